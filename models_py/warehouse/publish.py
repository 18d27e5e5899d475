"""Scores back into the warehouse: every scored day in ml.visitor_propensity_score_history, and what tonight is
compared with. What marketing reads is written from here by ``serving``."""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa

from models_py.config import Settings
from models_py.errors import BadInputError
from models_py.transaction import transaction
from models_py.warehouse.schema import SCORE_HISTORY as HISTORY_TABLE
from models_py.warehouse.serving import served


def write_history(con: duckdb.DuckDBPyConnection, scores: pa.Table, as_of: date) -> None:
    """Replace the as-of date's rows in one transaction: a rerun never duplicates a day."""
    con.register("new_scores", scores)
    try:
        with transaction(con):
            con.execute(f"delete from {HISTORY_TABLE} where as_of_date = ?", [as_of])
            con.execute(f"insert into {HISTORY_TABLE} by name select * from new_scores")
    finally:
        con.unregister("new_scores")


def check_scored(con: duckdb.DuckDBPyConnection, as_of: date | None) -> None:
    """Only a scored day can be published: anything else would serve an empty table."""
    first, last, days = con.execute(f"select min(as_of_date), max(as_of_date), count(distinct as_of_date) "
                                    f"from {HISTORY_TABLE}").fetchone()  # fmt: skip
    if as_of is None or not con.execute(f"select 1 from {HISTORY_TABLE} where as_of_date = ? limit 1",
                                        [as_of]).fetchone():  # fmt: skip
        scored = f"the {days} scored day(s) run from {first} to {last}" if days else "nothing is scored yet"
        raise BadInputError(f"no scores as of {as_of} to publish: {scored}. Score the day first (`propensity score "
                            "--as-of` or `propensity backfill`)")  # fmt: skip


def latest_scored_date(con: duckdb.DuckDBPyConnection) -> date:
    """What the serving table shows: the newest scored day (a backfill of older days never replaces it)."""
    return con.execute(f"select max(as_of_date) from {HISTORY_TABLE}").fetchone()[0]


def previous_scores(
    con: duckdb.DuckDBPyConnection, as_of: date, model_version: str | None = None
) -> tuple[int, float | None] | None:
    """Row count and mean propensity of the last scored day before ``as_of`` (what tonight is compared with). The
    mean is compared only between scores of the same model (``model_version``): another model may rightly shift it
    (a new champion, a backfill scoring past days with the model of then)."""
    row = con.execute(
        f"""select count(*), avg(propensity), max(model_version) = ? from {HISTORY_TABLE}
            where as_of_date = (select max(as_of_date) from {HISTORY_TABLE} where as_of_date < ?)""",
        [model_version, as_of],
    ).fetchone()
    if not row or not row[0]:
        return None
    return row[0], (row[1] if model_version is None or row[2] else None)


def already_published(con: duckdb.DuckDBPyConnection, cfg: Settings, as_of: date) -> str | None:
    """The run whose scores for ``as_of`` marketing reads now, if they came from the current champion: only then is
    there nothing to redo (a run killed between writing the history and swapping the serving file is redone)."""
    on_serving = served(cfg)
    if on_serving is None or on_serving[0] != as_of:
        return None
    row = con.execute(
        f"""select h.run_id from {HISTORY_TABLE} h
            join ml.model_registry r on r.model_version = h.model_version and r.status = 'champion'
            where h.as_of_date = ? and h.run_id = ? limit 1""",
        [as_of, on_serving[1]],
    ).fetchone()
    return row[0] if row else None
