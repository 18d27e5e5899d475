"""Scores back into the warehouse: every scored day in ml.visitor_propensity_score_history (a view over one Parquet
file a night, see schema.SCORE_HISTORY_COLUMNS), and what tonight is compared with. What marketing reads is
published from here by ``serving``."""

from __future__ import annotations

import os
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from models_py.config import Settings
from models_py.errors import BadInputError
from models_py.warehouse.schema import SCORE_HISTORY_COLUMNS, night_of_scores, score_history_file, scored_days
from models_py.warehouse.serving import durable, served, write_failure


def write_history(cfg: Settings, scores: pa.Table, as_of: date) -> None:
    """The as-of date's file, written under a temporary name, made durable and renamed over any earlier one: a rerun
    replaces its day, and a reader sees the old night or the new one, never a part."""
    columns = [c for c, _ in SCORE_HISTORY_COLUMNS]
    if scores.column_names != columns:
        raise ValueError(f"scores have columns {scores.column_names}, the score history {columns}")
    target = score_history_file(cfg.score_history_dir, as_of)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(".scores_*.tmp"):
            stale.unlink(missing_ok=True)  # left by a run that was killed while writing (the job runs alone)
        # Row groups of ~1M rows: a reader of one visitor range skips the rest (the rows are in visitor order).
        pq.write_table(scores, tmp, compression="zstd", row_group_size=1 << 20)
        durable(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise write_failure(f"the score history {target}", exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


def check_scored(cfg: Settings, as_of: date | None) -> None:
    """Only a scored day can be published: anything else would serve an empty table."""
    days = scored_days(cfg.score_history_dir)
    if as_of is None or as_of not in days:
        scored = f"the {len(days)} scored day(s) run from {days[0]} to {days[-1]}" if days else "nothing is scored yet"
        raise BadInputError(f"no scores as of {as_of} to publish: {scored}. Score the day first (`propensity score "
                            "--as-of` or `propensity backfill`)")  # fmt: skip


def latest_scored_date(cfg: Settings) -> date | None:
    """What the serving table shows: the newest scored day (a backfill of older days never replaces it)."""
    days = scored_days(cfg.score_history_dir)
    return days[-1] if days else None


def previous_scored_date(cfg: Settings, as_of: date) -> date | None:
    """The last scored day before ``as_of``: what tonight is compared with."""
    days = [d for d in scored_days(cfg.score_history_dir) if d < as_of]
    return days[-1] if days else None


def previous_scores(
    con: duckdb.DuckDBPyConnection, cfg: Settings, as_of: date, model_version: str | None = None
) -> tuple[int, float | None] | None:
    """Row count and mean propensity of the last scored day before ``as_of`` (what tonight is compared with). The
    mean is compared only between scores of the same model (``model_version``): another model may rightly shift it
    (a new champion, a backfill scoring past days with the model of then)."""
    day = previous_scored_date(cfg, as_of)
    if day is None:
        return None
    row = con.execute(
        f"select count(*), avg(propensity), max(model_version) = ? from {night_of_scores(cfg.score_history_dir, day)}",
        [model_version],
    ).fetchone()
    if not row[0]:
        return None
    return row[0], (row[1] if model_version is None or row[2] else None)


def already_published(con: duckdb.DuckDBPyConnection, cfg: Settings, as_of: date) -> str | None:
    """The run whose scores for ``as_of`` marketing reads now, if they came from the current champion: only then is
    there nothing to redo (a run killed between writing the history and swapping the serving file is redone)."""
    on_serving = served(cfg)
    if on_serving is None or on_serving[0] != as_of or not score_history_file(cfg.score_history_dir, as_of).is_file():
        return None
    row = con.execute(
        f"""select h.run_id from {night_of_scores(cfg.score_history_dir, as_of)} h
            join ml.model_registry r on r.model_version = h.model_version and r.status = 'champion'
            where h.run_id = ? limit 1""",
        [on_serving[1]],
    ).fetchone()
    return row[0] if row else None
