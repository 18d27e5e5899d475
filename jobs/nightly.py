"""The nightly job: ingest -> dbt build -> train (on schedule) -> score -> publish, with a run log."""

from __future__ import annotations

import json
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from models_py import drift, faults, ingest, publish, registry, score, train, validate, warehouse
from models_py.config import Settings
from models_py.dbt_runner import run_dbt
from models_py.shop_clock import DAY_MS, shop_day

RUN_LOG_DDL = """
create schema if not exists ml;
create table if not exists ml.run_log (
    run_id varchar primary key,
    as_of_date date,
    started_at timestamp,
    finished_at timestamp,
    status varchar,
    error varchar,
    stage_seconds_json varchar,
    rows_ingested bigint,
    visitors_scored bigint,
    model_version varchar
);
"""


@dataclass
class RunSummary:
    run_id: str
    as_of: date | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    rows_ingested: int = 0
    files_loaded: int = 0
    visitors_scored: int = 0
    model_version: str | None = None
    trained: str | None = None
    promoted: bool = False
    report: Path | None = None


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def latest_as_of(con: duckdb.DuckDBPyConnection) -> date:
    """The day after the last landed shop day: tonight's scores use every complete day."""
    last_ms = con.execute("select max(timestamp) from raw.events").fetchone()[0]
    if last_ms is None:
        raise RuntimeError("raw.events is empty: nothing to score (land event files in data/landing/ first)")
    return shop_day(last_ms) + timedelta(days=1)


def feature_dates_to_build(con: duckdb.DuckDBPyConnection, as_of: date, cfg: Settings) -> list[date]:
    """Tonight's date plus any spine date the feature mart lacks (the first run backfills the spine)."""
    first_ms = con.execute("select min(timestamp) from raw.events").fetchone()[0]
    first_day = shop_day(first_ms)
    spine = [as_of - timedelta(days=k * cfg.cutoff_step_days) for k in range(history_cutoffs(cfg) + 1)]
    spine = [d for d in spine if d > first_day]
    try:
        have = {r[0] for r in con.execute("select distinct as_of_date from marts.fct_visitor_features").fetchall()}
    except duckdb.CatalogException:
        have = set()
    return sorted({d for d in spine if d not in have} | {as_of})


def feature_build_passes(build_dates: list[date], events: int, event_cutoffs_per_build: int) -> list[list[date]]:
    """Split the dates to build so that no dbt pass joins more than ~``event_cutoffs_per_build`` event x cut-off
    rows (each cut-off reads every earlier event): one pass at scale 1, one date per pass at scale 10."""
    per_pass = max(1, event_cutoffs_per_build // max(events, 1))
    return [build_dates[i : i + per_pass] for i in range(0, len(build_dates), per_pass)]


def history_cutoffs(cfg: Settings) -> int:
    """Spine length: the training cut-offs, the validation cut-off, and the week whose labels are not complete."""
    return cfg.training_cutoffs + 1 + -(-cfg.horizon_days // cfg.cutoff_step_days)


def dbt_vars(as_of: date, build_dates: list[date], cfg: Settings) -> dict:
    return {
        "as_of_date": as_of.isoformat(),
        "feature_dates": [d.isoformat() for d in build_dates],
        "history_cutoffs": history_cutoffs(cfg),
        "cutoff_step_days": cfg.cutoff_step_days,
        "label_horizon_days": cfg.horizon_days,
    }


def previous_scores(con: duckdb.DuckDBPyConnection, as_of: date) -> tuple[int, float] | None:
    """Row count and mean propensity of the last scored day before ``as_of`` (what tonight is compared with)."""
    try:
        row = con.execute(
            """select count(*), avg(propensity) from ml.visitor_propensity_score_history
               where as_of_date = (select max(as_of_date) from ml.visitor_propensity_score_history
                                   where as_of_date < ?)""",
            [as_of],
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return (row[0], row[1]) if row and row[0] else None


def retrain_due(con: duckdb.DuckDBPyConnection, as_of: date, cfg: Settings) -> bool:
    registry.ensure_schema(con)
    row = con.execute("select max(as_of_date) from ml.model_registry").fetchone()
    return row[0] is None or (as_of - row[0]).days >= cfg.retrain_every_days


class Stages:
    """Times each stage and keeps the summary; a failing stage propagates after being logged."""

    def __init__(self, summary: RunSummary, say: Callable[[str], None]):
        self.summary, self.say = summary, say

    def timed(self, name: str):
        stages = self

        class _Timer:
            def __enter__(self):
                stages.say(f"[{name}] ...")
                faults.point(name)
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                seconds = time.perf_counter() - self.t
                stages.summary.stage_seconds[name] = round(seconds, 2)
                if exc[0] is None:
                    stages.say(f"[{name}] done in {seconds:.1f}s")

        return _Timer()


def already_published(con: duckdb.DuckDBPyConnection, as_of: date, cfg: Settings) -> str | None:
    """The run that published ``as_of`` with the current champion, if its scores are still what is served."""
    try:
        row = con.execute(
            """select max(h.run_id) from ml.visitor_propensity_score_history h
               join ml.model_registry r on r.model_version = h.model_version and r.status = 'champion'
               where h.as_of_date = ?""",
            [as_of],
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row and row[0] and cfg.serving_path.exists() else None


def run_nightly(
    cfg: Settings,
    as_of: date | None = None,
    files: list | None = None,
    say: Callable[[str], None] = print,
    force: bool = False,
) -> RunSummary:
    summary = RunSummary(run_id=new_run_id())
    stages = Stages(summary, say)
    started = datetime.now(UTC).replace(tzinfo=None)
    try:
        with stages.timed("ingest"), warehouse.session(cfg.warehouse_path) as con:
            _log_run(con, summary, started, "running", None)  # stays "running" if the process is killed
            outcomes: list[validate.Outcome] = []

            def gate(parsed: list) -> None:
                outcomes.extend(
                    validate.run_suite(
                        "raw_events", validate.incoming_events_frame(parsed), {"now_ms": int(time.time() * 1000)}
                    )
                )
                validate.record(con, summary.run_id, outcomes)
                validate.raise_if_failed(outcomes, "tonight's landing files")

            result = ingest.ingest(
                con, files or ingest.landing_files(cfg.landing_dir), summary.run_id, cfg.landing_dir, gate=gate
            )
            summary.rows_ingested, summary.files_loaded = result.rows_loaded, len(result.files_loaded)
            say(
                f"  {len(result.files_loaded)} new file(s), {result.rows_loaded:,} rows loaded, "
                f"{result.duplicates_dropped:,} duplicates dropped, {len(result.files_skipped)} already loaded"
            )
            summary.as_of = as_of or latest_as_of(con)
            if summary.as_of > latest_as_of(con):
                raise ValueError(
                    f"as-of date {summary.as_of} is after the last landed shop day + 1 ({latest_as_of(con)}): "
                    "its features would miss events that have not arrived yet"
                )
            build_dates = feature_dates_to_build(con, summary.as_of, cfg)
            events_loaded = con.execute("select count(*) from raw.events").fetchone()[0]
            previous = None if force or result.rows_loaded else already_published(con, summary.as_of, cfg)
            retrain = retrain_due(con, summary.as_of, cfg)
        if previous and not retrain:
            say(f"nothing new since run {previous}: scores as of {summary.as_of} stay as published (--force reruns)")
            with warehouse.session(cfg.warehouse_path) as con:
                _log_run(con, summary, started, "skipped", f"nothing new since run {previous}")
            summary.run_id = previous
            return summary
        say(f"as-of date {summary.as_of}; building features for {', '.join(map(str, build_dates))}")
        with stages.timed("dbt build"):
            passes = feature_build_passes(build_dates, events_loaded, cfg.event_cutoffs_per_build)
            for k, dates in enumerate(passes[:-1]):
                # A large shop's first run: earlier spine dates in passes of bounded size, the rest in the build.
                say(f"features pass {k + 1}/{len(passes)}: {', '.join(map(str, dates))}")
                # Upstream too: the intermediate views embed the run's dates when they are created.
                run_dbt(
                    cfg, ["run", "--select", "+fct_visitor_features"], dbt_vars(summary.as_of, dates, cfg), progress=say
                )
            run_dbt(cfg, ["build"], dbt_vars(summary.as_of, passes[-1], cfg), progress=say)
        with warehouse.session(cfg.warehouse_path) as con:
            if retrain:
                with stages.timed("train"):
                    folder, meta = train.train(con, summary.as_of, cfg, progress=say)
                    summary.trained = meta.version
                with stages.timed("promote"):
                    summary.promoted = train.promote_if_better(con, meta, cfg, say)
            model = registry.load_champion(con)
            if model is None:
                raise RuntimeError("no champion model to score with (training has not produced one yet)")
            summary.model_version = model.meta.version
            previous = previous_scores(con, summary.as_of)
            with stages.timed("validate features"):
                eligible = check_features(con, cfg, summary.run_id, summary.as_of, previous)
            with stages.timed("drift"):
                check_feature_drift(con, cfg, summary.run_id, summary.as_of, model, say)
            with stages.timed("score"):
                scores = score.score(con, model, summary.as_of, summary.run_id, cfg.score_batch_rows, cfg.threads)
                summary.visitors_scored = scores.num_rows
            with stages.timed("validate scores"):
                check_scores(con, cfg, summary.run_id, summary.as_of, scores, eligible, previous, say)
            with stages.timed("publish"):
                publish.write_history(con, scores, summary.as_of)
                publish.publish_serving(con, cfg.serving_path, publish.latest_scored_date(con), summary.run_id)
            with stages.timed("report"):
                summary.report = refresh_report(con, cfg, summary.run_id, say)
            _log_run(con, summary, started, "succeeded", None)
    except BaseException as exc:
        _log_failure(cfg, summary, started, exc)
        raise
    return summary


def check_features(
    con: duckdb.DuckDBPyConnection, cfg: Settings, run_id: str, as_of: date, previous: tuple[int, float] | None
) -> int:
    """The features gate; returns the number of eligible visitors (what the scores must cover)."""
    columns = ", ".join(validate.suite_columns("visitor_features"))
    features = warehouse.fetch_arrow(
        con, f"select {columns} from marts.fct_visitor_features where as_of_date = ?", [as_of]
    )
    if previous:
        low, high = int(previous[0] * (1 - cfg.row_count_tolerance)), int(previous[0] * (1 + cfg.row_count_tolerance))
    else:
        low, high = 1, 10**12
    outcomes = validate.run_suite("visitor_features", features.to_pandas(), {"min_rows": low, "max_rows": high})
    validate.record(con, run_id, outcomes)
    validate.raise_if_failed(outcomes, f"features as of {as_of}")
    return features.num_rows


def check_feature_drift(
    con: duckdb.DuckDBPyConnection,
    cfg: Settings,
    run_id: str,
    as_of: date,
    model: registry.LoadedModel,
    say: Callable[[str], None],
) -> None:
    reference = date.fromisoformat(model.meta.training_as_of_dates[-1])
    found = drift.feature_drift(
        con, run_id, as_of, reference, model.meta.version, model.meta.features, cfg.drift_warn_psi, cfg.drift_fail_psi
    )
    warned = drift.raise_if_drifted(
        found, f"features as of {as_of} vs the training cut-off {reference}", cfg.drift_fail_psi
    )
    if not found:
        say(f"  no feature drift measured: the training cut-off {reference} is not in the feature mart")
        return
    worst = max(found, key=lambda d: d.psi)
    say(
        f"  largest feature drift: {worst.name} PSI {worst.psi:.3f}; "
        f"{len(warned)} feature(s) above the warning level {cfg.drift_warn_psi}"
    )
    for d in warned:
        say(f"  warning: feature {d.name} drifted, PSI {d.psi:.3f} (ml.feature_drift)")


def check_scores(
    con: duckdb.DuckDBPyConnection,
    cfg: Settings,
    run_id: str,
    as_of: date,
    scores,
    eligible: int,
    previous: tuple[int, float] | None,
    say: Callable[[str], None],
) -> None:
    """The scores gate (range, one per eligible visitor, mean against the last day) and the score drift."""
    mean_before = previous[1] if previous else None
    outcomes = validate.run_suite(
        "visitor_scores",
        scores.select(["visitor_id", "propensity", "decile"]).to_pandas(),
        {
            "eligible_visitors": eligible,
            "min_mean": mean_before / cfg.score_mean_ratio_limit if mean_before else 0.0,
            "max_mean": mean_before * cfg.score_mean_ratio_limit if mean_before else 1.0,
        },
    )
    validate.record(con, run_id, outcomes)
    validate.raise_if_failed(outcomes, f"scores as of {as_of}")
    shifted = drift.score_drift(
        con, run_id, as_of, scores["propensity"].to_numpy(), cfg.drift_warn_psi, cfg.drift_fail_psi
    )
    if shifted:
        drift.raise_if_drifted([shifted], f"scores as of {as_of} vs the previous day", cfg.drift_fail_psi)
        say(f"  score drift vs the previous day: PSI {shifted.psi:.3f} ({shifted.status})")


def refresh_report(
    con: duckdb.DuckDBPyConnection, cfg: Settings, run_id: str, say: Callable[[str], None]
) -> Path | None:
    """The report with tonight's model and drift sections; a broken chart must not fail a published run."""
    from jobs.backtest import latest_backtest, latest_ceiling
    from models_py.report import write_report

    try:
        return write_report(
            con, cfg.reports_dir / run_id, cfg.models_dir, latest_backtest(cfg.reports_dir),
            f"Purchase propensity report, nightly run {run_id}", latest_ceiling(cfg.reports_dir),
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        say(f"warning: the report was not refreshed: {type(exc).__name__}: {exc}")
        return None


def _log_run(con, summary: RunSummary, started: datetime, status: str, error: str | None) -> None:
    con.execute(RUN_LOG_DDL)
    con.execute(
        "insert or replace into ml.run_log values (?, ?, ?, now(), ?, ?, ?, ?, ?, ?)",
        [summary.run_id, summary.as_of, started, status, error, json.dumps(summary.stage_seconds),
         summary.rows_ingested, summary.visitors_scored, summary.model_version],
    )  # fmt: skip


def _log_failure(cfg: Settings, summary: RunSummary, started: datetime, exc: BaseException) -> None:
    """Best effort: a failure is recorded if the warehouse can be opened; the original error always wins."""
    try:
        with warehouse.session(cfg.warehouse_path) as con:
            message = f"{type(exc).__name__}: {exc}"
            _log_run(con, summary, started, "failed", message[:4000] + "\n" + traceback.format_exc(limit=3)[-2000:])
    except Exception:  # noqa: BLE001, S110 - logging the failure must not hide the failure
        pass


__all__ = ["run_nightly", "RunSummary", "DAY_MS"]
