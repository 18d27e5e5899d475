"""Connections to the DuckDB warehouse, with a bounded wait and a clear message when another process holds it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from models_py.config import settings

RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.events (
    timestamp bigint not null,
    visitorid bigint not null,
    event varchar not null,
    itemid bigint not null,
    transactionid bigint
);
create table if not exists raw.item_properties (timestamp bigint, itemid bigint, property varchar, value varchar);
create table if not exists raw.category_tree (categoryid bigint, parentid bigint);
create table if not exists raw.load_log (
    file_name varchar not null,
    sha256 varchar not null,
    kind varchar not null,
    rows_in_file bigint,
    rows_loaded bigint,
    duplicates_dropped bigint,
    first_event_ms bigint,
    last_event_ms bigint,
    loaded_at timestamp,
    run_id varchar
);
"""


class WarehouseBusyError(RuntimeError):
    """Another process holds the warehouse file."""


def connect(path: Path, read_only: bool = False, attempts: int = 5, wait_s: float = 1.0) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; if another process holds its lock, retry a few times, then say so plainly."""
    config = {"memory_limit": settings().duckdb_memory_limit}
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            con.execute("set enable_progress_bar = false")  # the job reports its own progress; bars garble logs
            return con
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            last = exc
            if attempt < attempts - 1:
                time.sleep(wait_s * (attempt + 1))
    raise WarehouseBusyError(
        f"the warehouse {path} is held by another process (another nightly run, dbt, or a tool with it open); "
        f"gave up after {attempts} attempts. Close that process, or let it finish, and run again. ({last})"
    )


@contextmanager
def session(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(RAW_DDL)


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    """A query's result as one Arrow table (DuckDB 1.5 returns a record batch reader from ``.arrow()``)."""
    result = con.execute(sql, params or []).arrow()
    return result.read_all() if hasattr(result, "read_all") else result
