"""All-or-nothing writes to DuckDB that keep the error that caused a rollback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit the block's writes, or none of them; if the block fails, the rollback is attempted but its own failure
    (DuckDB may already have aborted the transaction, on a full disk say) never replaces the error that caused it."""
    con.begin()
    try:
        yield
    except BaseException:
        try:
            con.rollback()
        except duckdb.Error:
            pass  # the first error is the one to report
        raise
    con.commit()
