"""`propensity unload FILE`: take a loaded events file back out, with everything that was built on it.

A loaded shop day is final (the rollups folded it in) and every night's load lies after the last one, so a load and
every later one are exactly the events after the days loaded before it. Unloading a file takes out its night's
load and every later load (the operator lands the good files again), the scores and models of as-of dates that saw
them, and everything dbt derived from the events (intermediate and marts), which the next night builds anew. The
scores marketing reads stay until the next night publishes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date

import duckdb

from models_py.config import Settings
from models_py.errors import BadInputError
from models_py.ops import registry
from models_py.transaction import transaction
from models_py.warehouse import build_plan, dbt, spark
from models_py.warehouse.schema import MODEL_REGISTRY, SCORE_HISTORY, score_history_file, scored_days
from models_py.warehouse.serving import ServingFiles


@dataclass
class Unloaded:
    files: list[str]
    events: int
    first_day: date
    scored_days: int
    models_withdrawn: list[str]
    champion: str | None


def unload(con: duckdb.DuckDBPyConnection, cfg: Settings, file_name: str) -> Unloaded:
    loads = con.execute(
        "select file_name, first_event_ms, loaded_at from raw.load_log where kind = 'events' order by loaded_at"
    ).fetchall()
    mine = [row for row in loads if row[0] == file_name]
    if not mine:
        known = ", ".join(r[0] for r in loads[-5:]) or "none"
        raise BadInputError(f"no events file named {file_name!r} was loaded (the last loads: {known})")
    since = mine[0][2]
    taken = [row for row in loads if row[2] >= since]
    boundary_ms = min(row[1] for row in taken)
    first_day = cfg.calendar.shop_day(boundary_ms)
    cut_ms = cfg.calendar.day_start_ms(first_day)
    dbt.drop_derived_on_spark(cfg)  # first: if it fails, nothing in the warehouse file has changed
    with transaction(con):
        events = con.execute("select count(*) from raw.events where timestamp >= ?", [cut_ms]).fetchone()[0]
        con.execute("delete from raw.events where timestamp >= ?", [cut_ms])
        con.execute("delete from raw.load_log where kind = 'events' and loaded_at >= ?", [since])
        scored = [day for day in scored_days(cfg.score_history_dir) if day > first_day]
        withdrawn = [r[0] for r in con.execute(
            f"update {MODEL_REGISTRY} set status = 'withdrawn', status_changed_at = now() "
            "where as_of_date > ? returning model_version", [first_day]
        ).fetchall()]  # fmt: skip
        build_plan.drop_derived(con)  # the rollups and folded states saw the events: the next build starts over
        for day in scored:  # last, once every statement has run: the history is files beside the warehouse
            score_history_file(cfg.score_history_dir, day).unlink(missing_ok=True)
    champion = registry.champion(con)
    if champion is None:
        fallback = con.execute(
            f"select model_version from {MODEL_REGISTRY} where status = 'retired' order by as_of_date desc limit 1"
        ).fetchone()
        if fallback:
            registry.set_champion(con, fallback[0])
        else:  # no model from before: the next night trains one; on-demand scoring has none meanwhile
            (cfg.models_dir / registry.CHAMPION_POINTER).unlink(missing_ok=True)
    for day in scored:
        ServingFiles(cfg.serving_path).night(day).unlink(missing_ok=True)
        shutil.rmtree(spark.table_folder(cfg, SCORE_HISTORY) / f"as_of_date={day}", ignore_errors=True)
    now = registry.champion(con)
    return Unloaded([r[0] for r in taken], events, first_day, len(scored), withdrawn, now[0] if now else None)
