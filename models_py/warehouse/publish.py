"""Write scores back: history in the warehouse, and a serving file swapped in atomically for readers."""

from __future__ import annotations

import errno
import os
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from models_py import faults
from models_py.errors import JobFailed
from models_py.warehouse.schema import SCORE_HISTORY as HISTORY_TABLE


class PublishError(JobFailed):
    """The serving file could not be written (disk full, unwritable path)."""


def write_history(con: duckdb.DuckDBPyConnection, scores: pa.Table, as_of: date) -> None:
    """Replace the as-of date's rows in one transaction: a rerun never duplicates a day."""
    con.register("new_scores", scores)
    con.begin()
    try:
        con.execute(f"delete from {HISTORY_TABLE} where as_of_date = ?", [as_of])
        con.execute(f"insert into {HISTORY_TABLE} by name select * from new_scores")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.unregister("new_scores")


def publish_serving(con: duckdb.DuckDBPyConnection, serving_path: Path, as_of: date, run_id: str) -> Path:
    """Build the marketing file under a temporary name from the warehouse, then rename it over the old one.

    A reader holding the old file keeps its (old, complete) copy; the next reader opens the new one. Nothing of
    the warehouse itself is ever exposed, so readers never block the nightly job.
    """
    tmp = serving_path.with_name(f".{serving_path.name}.{run_id}.tmp")
    try:
        serving_path.parent.mkdir(parents=True, exist_ok=True)
        for stale in serving_path.parent.glob(f".{serving_path.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a run killed mid-publish
        con.execute("attach '" + str(tmp).replace("'", "''") + "' as serving_new")
        try:
            con.execute(
                f"""create table serving_new.visitor_propensity_scores as
                    select visitor_id, as_of_date, propensity, decile, segment, reason_1, reason_2, reason_3,
                           model_version, run_id, scored_at
                    from {HISTORY_TABLE} where as_of_date = ? order by visitor_id""",
                [as_of],
            )
            con.execute(
                f"""create table serving_new.visitor_propensity_score_history as
                    select * from {HISTORY_TABLE} order by as_of_date, visitor_id"""
            )
        finally:
            con.execute("detach serving_new")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        faults.point("publish:swap")
        os.replace(tmp, serving_path)
    except (OSError, duckdb.IOException) as exc:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left" in str(exc)
        raise PublishError(
            f"cannot write the serving file {serving_path}: "
            + ("the disk is full" if full else str(getattr(exc, "strerror", None) or exc))
            + "; the previous serving file is untouched, free space or fix the path and rerun"
        ) from exc
    return serving_path


def latest_scored_date(con: duckdb.DuckDBPyConnection) -> date:
    """What the serving table shows: the newest scored day (a backfill of older days never replaces it)."""
    return con.execute(f"select max(as_of_date) from {HISTORY_TABLE}").fetchone()[0]


def previous_scores(con: duckdb.DuckDBPyConnection, as_of: date) -> tuple[int, float] | None:
    """Row count and mean propensity of the last scored day before ``as_of`` (what tonight is compared with)."""
    row = con.execute(
        f"""select count(*), avg(propensity) from {HISTORY_TABLE}
            where as_of_date = (select max(as_of_date) from {HISTORY_TABLE} where as_of_date < ?)""",
        [as_of],
    ).fetchone()
    return (row[0], row[1]) if row and row[0] else None


def already_published(con: duckdb.DuckDBPyConnection, as_of: date, serving_path: Path) -> str | None:
    """The run that published ``as_of`` with the current champion, if its scores are still what is served."""
    row = con.execute(
        f"""select max(h.run_id) from {HISTORY_TABLE} h
            join ml.model_registry r on r.model_version = h.model_version and r.status = 'champion'
            where h.as_of_date = ?""",
        [as_of],
    ).fetchone()
    return row[0] if row and row[0] and serving_path.exists() else None
