"""Connections to the DuckDB warehouse, with a bounded wait and a clear message when another process holds it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from models_py.config import MEMORY, Settings
from models_py.errors import BadInputError, WarehouseBusyError
from models_py.warehouse import schema

AUTO_MEMORY_FLOOR = 2 << 30
AUTO_MEMORY_PER_EVENT = 220  # bytes: scale 10 (27M events) rolls its history up in the 6 GiB this gives; 2 GB fails
# bytes a feature-mart row (visitor x cut-off) needs in one insert: scale 10's 14.1M rows fit 5.6 GiB; in 1.1 GiB,
# 3.5M fit and 14.1M spilled 2.1 GB (docs/performance.md, 2026-12-03).
MART_MEMORY_PER_ROW = 400


def memory_limit(setting: str, events: int = 0) -> str:
    """The DuckDB memory limit a setting means for a warehouse of ``events`` events (see duckdb_memory_limit in
    settings.toml): a size as given, or for ``auto`` one that grows with the shop, within half the machine. Only dbt
    is given the events: its first night sorts the whole history's visitor days."""
    if setting != "auto":
        return setting
    half_the_machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    return f"{min(_in_coarse_steps(max(AUTO_MEMORY_FLOOR, events * AUTO_MEMORY_PER_EVENT)), half_the_machine) >> 20}MiB"


def _in_coarse_steps(size: int) -> int:
    """``size`` rounded up to a quarter of the power of two below it (..., 4, 5, 6, 7, 8, 10, 12 GiB, ...). The limit
    reaches dbt through its profile, and a profile that changes makes dbt parse the whole project again (2-3 s): in
    steps, a growing shop's limit changes every few weeks of events, not every night."""
    step = max(1, (1 << (size.bit_length() - 1)) // 4)
    return -(-size // step) * step


MEMORY_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
                "TiB": 1 << 40}  # fmt: skip


def memory_bytes(size: str) -> int:
    """A memory size as DuckDB reads it ('6GB', '800MiB'; the settings' MEMORY pattern) in bytes."""
    match = MEMORY.fullmatch(size.strip())
    return int(float(match.group(0)[: -len(match.group(2))]) * MEMORY_UNITS[match.group(2)])


def events_that_fit(setting: str, events: int) -> int:
    """How many events one dbt build can roll up within the memory limit dbt gets for a warehouse of ``events``
    events (AUTO_MEMORY_PER_EVENT each): a larger history is rolled up in chunks of days."""
    return memory_bytes(memory_limit(setting, events)) // AUTO_MEMORY_PER_EVENT


def mart_rows_that_fit(setting: str, events: int) -> int:
    """How many feature-mart rows one insert can join and group within the memory limit dbt gets for a warehouse
    of ``events`` events (MART_MEMORY_PER_ROW each): a larger build inserts in visitor-id ranges."""
    return memory_bytes(memory_limit(setting, events)) // MART_MEMORY_PER_ROW


def loaded_events(con: duckdb.DuckDBPyConnection) -> int:
    """Events in the warehouse's raw.events (0 before the first load)."""
    exists = con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'raw' and table_name = 'events'"
    ).fetchone()[0]
    return con.execute("select count(*) from raw.events").fetchone()[0] if exists else 0


def connect(
    path: Path,
    memory_limit_setting: str,
    read_only: bool = False,
    attempts: int = 5,
    wait_s: float = 1.0,
    disabled_compression: str = "",
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file; if another process holds its lock, retry a few times, then say so plainly."""
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            # The job's own queries stream (training's sample, scoring's batches): 'auto' keeps them at its floor.
            con = duckdb.connect(
                str(path), read_only=read_only, config={"memory_limit": memory_limit(memory_limit_setting)}
            )
            con.execute("set enable_progress_bar = false")  # the job reports its own progress; bars garble logs
            if disabled_compression and not read_only:
                con.execute(f"set disabled_compression_methods = '{disabled_compression}'")
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


def check_warehouse(path: Path, create: bool) -> None:
    """A warehouse path that is a folder, or a missing warehouse for a command that only reads or extends one, is
    refused before DuckDB creates an empty file in its place."""
    if path.is_dir():
        raise BadInputError(
            f"PROPENSITY_WAREHOUSE={path} is a folder; point it at a DuckDB file (e.g. propensity.duckdb)"
        )
    if not create and not path.exists():
        raise BadInputError(
            f"no warehouse at {path}: run `propensity nightly` (or `propensity ingest`) first, or point "
            "PROPENSITY_WAREHOUSE at the existing warehouse"
        )


@contextmanager
def session(cfg: Settings, read_only: bool = False, create: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse of these settings; a writer's session first brings the job's own tables up to date. Only the
    commands that load events (``create``) may start a new warehouse."""
    check_warehouse(cfg.warehouse_path, create and not read_only)
    con = connect(
        cfg.warehouse_path, cfg.duckdb_memory_limit, read_only, disabled_compression=cfg.duckdb_disabled_compression
    )
    try:
        if not read_only:
            schema.ensure(con, cfg.score_history_dir)
        yield con
    finally:
        con.close()


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    """A query's result as one Arrow table (DuckDB 1.5 returns a record batch reader from ``.arrow()``)."""
    result = con.execute(sql, params or []).arrow()
    return result.read_all() if hasattr(result, "read_all") else result
