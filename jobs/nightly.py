"""The nightly job: ingest, dbt build, train (on schedule), gates, score, publish, report; with a run log."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date

from models_py.config import Settings
from models_py.data import ingest, landing
from models_py.errors import JobFailed
from models_py.ops import gates, run_log, schedule
from models_py.ops.run_log import RunSummary, stage
from models_py.warehouse import build_plan, dbt, publish, serving, spark
from models_py.warehouse.build_plan import BuildPlan
from models_py.warehouse.connection import session

# The stages after the build import XGBoost, scikit-learn and matplotlib (~1.5 s of a core): on a thread of their
# own while ingest and dbt run, instead of on the night's path before it starts.
STAGES_AFTER_THE_BUILD = (
    "models_py.modeling.score", "models_py.modeling.score_in_spark", "models_py.modeling.train",
    "models_py.ops.drift", "models_py.ops.promotion", "models_py.ops.registry", "models_py.ops.report",
)  # fmt: skip


@dataclass
class NightPlan:
    """What tonight's run will do, decided after ingest."""

    build: BuildPlan = field(default_factory=BuildPlan)
    build_is_current: bool = False  # the last build made tonight's tables from the same inputs: nothing to redo
    retrain: bool = False
    published_by: str | None = None  # the run that already published tonight's date, if nothing changed since


def run_nightly(
    cfg: Settings,
    as_of: date | None = None,
    files: list | None = None,
    say: Callable[[str], None] = print,
    force: bool = False,
) -> RunSummary:
    summary = RunSummary(run_id=run_log.new_run_id())
    dbt.warm_up()  # dbt's process imports dbt while tonight's files load
    threading.Thread(target=_import_stages_after_the_build, daemon=True).start()
    try:
        plan = _ingest_and_plan(cfg, summary, as_of, files, say, force)
        if plan.published_by and not plan.retrain:
            say(f"nothing new since run {plan.published_by}: scores as of {summary.as_of} stay as published "
                "(--force reruns)")  # fmt: skip
            with session(cfg) as con:
                run_log.record(con, summary, "skipped", f"nothing new since run {plan.published_by}")
            summary.run_id = plan.published_by
            return summary
        _build(cfg, summary, plan, say)
        with session(cfg) as con:
            winner = _train_challenger(con, cfg, summary, say) if plan.retrain else None
            _score_and_publish(con, cfg, summary, say, winner)
            with stage(summary, "report", say):
                summary.report = _refresh_report(con, cfg, summary.run_id, say)
            run_log.record(con, summary, "succeeded")
    except BaseException as exc:
        _record_failure(cfg, summary, exc)
        raise
    return summary


def _import_stages_after_the_build() -> None:
    """A module that fails to import here fails again where its stage imports it, and the night reports it there."""
    for name in STAGES_AFTER_THE_BUILD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001
            return


def _ingest_and_plan(cfg: Settings, summary: RunSummary, as_of: date | None, files, say, force: bool) -> NightPlan:
    """Load tonight's files, fix the as-of date and decide what the night builds."""
    with stage(summary, "ingest", say), session(cfg, create=True) as con:
        if closed := run_log.close_abandoned(con, summary.run_id):
            say(f"  {closed} earlier run(s) had ended without recording it (killed?): marked failed in ml.run_log")
        run_log.record(con, summary, "running")  # stays "running" if the process is killed, until the next run

        tonight = files or landing.ready_files(cfg.landing_dir, say)
        result = ingest.ingest(con, tonight, summary.run_id, cfg.calendar, cfg.landing_dir,
                               gates.landing_gate(con, cfg, summary.run_id), cfg.max_gap_days,
                               cfg.earliest_event_ms)  # fmt: skip
        summary.rows_ingested, summary.files_loaded = result.rows_loaded, len(result.files_loaded)
        say(
            f"  {len(result.files_loaded)} new file(s), {result.rows_loaded:,} rows loaded, "
            f"{result.duplicates_dropped:,} duplicates dropped, {len(result.files_skipped)} already loaded"
        )
        summary.as_of = as_of or build_plan.latest_as_of(con, cfg)
        build_plan.check_servable(con, cfg, summary.as_of)
        night = build_plan.plan_night(con, cfg, summary.as_of)
        return NightPlan(
            build=night,
            build_is_current=dbt.build_is_current(con, cfg, night),
            retrain=schedule.retrain_due(con, summary.as_of, cfg),
            published_by=None
            if force or result.rows_loaded or summary.as_of not in build_plan.built(con, build_plan.FEATURES_MART)
            else publish.already_published(con, cfg, summary.as_of),
        )


def _build(cfg: Settings, summary: RunSummary, plan: NightPlan, say: Callable[[str], None]) -> None:
    say(f"as-of date {summary.as_of}: {build_plan.describe(plan.build)}")
    with stage(summary, "dbt build", say):
        if plan.build_is_current:
            say("  already built: the last build made tonight's tables from the same files, models and settings")
            return
        dbt.build(cfg, plan.build, say)


def _train_challenger(con, cfg: Settings, summary: RunSummary, say: Callable[[str], None]) -> str | None:
    """Train and register tonight's model; the version to promote if it wins (promoted after the gates pass)."""
    from models_py.modeling import train
    from models_py.ops import promotion, registry

    with stage(summary, "train", say):
        trained = train.train(con, summary.as_of, cfg, progress=say)
        meta = registry.store(con, cfg, trained, summary.as_of)
        summary.trained = meta.version
        m = meta.metrics
        say(
            f"model {meta.version}: {meta.best_iteration} trees, validation ROC AUC {m['roc_auc']:.3f}, "
            f"PR AUC {m['pr_auc']:.4f}, ECE {m['ece']:.5f}"
        )
    with stage(summary, "promote", say):
        return meta.version if promotion.challenger_wins(con, meta, cfg, say) else None


def _score_and_publish(con, cfg: Settings, summary: RunSummary, say: Callable[[str], None], winner: str | None):
    """Score with tonight's winner (if a retrained model won) or the champion; the winner becomes champion only once
    every gate has passed, so a night that fails a gate leaves the champion as it was."""
    from models_py.modeling import score, score_in_spark
    from models_py.ops import drift, registry

    model = registry.load_version(con, winner) if winner else _model_of_then(con, cfg, summary, say)
    summary.model_version = model.version
    previous = publish.previous_scores(con, cfg, summary.as_of, model.version)
    with stage(summary, "validate features", say):
        eligible = gates.check_features(con, cfg, summary.run_id, summary.as_of, previous)
    with ExitStack() as stack:  # the Spark engine's session lives from scoring to publishing
        on_spark = stack.enter_context(spark.spark_session(cfg)) if cfg.engine == "spark" else None
        with stage(summary, "score", say):
            if on_spark:
                scored = score_in_spark.score(on_spark, cfg, model, summary.as_of, summary.run_id)
            else:
                scored = score.score(con, model, summary.as_of, summary.run_id, cfg.score_batch_rows, cfg.threads)
            summary.visitors_scored = scored.scores.num_rows
        with stage(summary, "drift", say):
            drift.check_feature_drift(con, cfg, summary.run_id, summary.as_of, model, scored.feature_sample, say)
        with stage(summary, "validate scores", say):
            gates.check_scores(con, cfg, summary.run_id, summary.as_of, scored.scores, eligible, previous)
            drift.check_score_drift(
                con, cfg, summary.run_id, summary.as_of, scored.scores["propensity"].to_numpy(), say, model.version
            )
        if winner:
            registry.set_champion(con, winner)
            summary.promoted = True
            say(f"  {winner} promoted to champion (tonight's gates passed)")
        with stage(summary, "publish", say):
            if on_spark:
                score_in_spark.write_scores_table(on_spark, cfg, scored.scores)
            publish.write_history(cfg, scored.scores, summary.as_of)
            serving.publish(cfg, summary.as_of, publish.latest_scored_date(cfg), summary.run_id)


def _model_of_then(con, cfg: Settings, summary: RunSummary, say: Callable[[str], None]):
    """The champion, unless it learned from labels after the as-of date (a backfill of past days, `--as-of` in the
    past): then the newest model trained by that date, or one trained now with the labels complete before it
    (registered, never promoted). A past day's scores never come from a model that saw its future."""
    from models_py.modeling import train
    from models_py.ops import registry

    champion = registry.load_champion(con)
    if champion is None:
        raise JobFailed("no champion model to score with (training has not produced one yet)")
    if date.fromisoformat(champion.meta.as_of_date) <= summary.as_of:
        return champion
    row = con.execute(
        "select model_version from ml.model_registry where status <> 'withdrawn' and as_of_date <= ? "
        "order by as_of_date desc, trained_at desc limit 1",
        [summary.as_of],
    ).fetchone()
    if row:
        say(f"  {summary.as_of} is before the champion's training date: scoring with {row[0]}, trained by then")
        return registry.load_version(con, row[0])
    with stage(summary, "train", say):
        say(f"  no model was trained by {summary.as_of}: training one on the labels complete before it (not promoted)")
        meta = registry.store(con, cfg, train.train(con, summary.as_of, cfg, progress=say), summary.as_of)
        summary.trained = meta.version
    return registry.load_version(con, meta.version)


def _refresh_report(con, cfg: Settings, run_id: str, say: Callable[[str], None]):
    """The report with tonight's model and drift sections; a broken chart must not fail a published run."""
    from models_py.ops import report

    try:
        return report.refresh(con, cfg, run_id, f"Purchase propensity report, nightly run {run_id}")
    except Exception as exc:  # noqa: BLE001
        say(f"warning: the report was not refreshed: {type(exc).__name__}: {exc}")
        return None


def _record_failure(cfg: Settings, summary: RunSummary, exc: BaseException) -> None:
    """Best effort: a failure is recorded if the warehouse can be opened; the original error always wins."""
    try:
        with session(cfg) as con:
            run_log.record(con, summary, "failed", run_log.failure_text(exc))
    except Exception:  # noqa: BLE001, S110 - logging the failure must not hide the failure
        pass
