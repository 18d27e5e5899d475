"""The nightly job and each of its stages on its own: build, train, score, publish, validate; backfill."""

from __future__ import annotations

import time

import typer

from jobs.commands.common import AS_OF_HELP, one_job_at_a_time, parse_date, say
from models_py.config import settings
from models_py.errors import JobFailed

app = typer.Typer()


@app.command()
@one_job_at_a_time
def build(
    as_of: str = typer.Option(None, help=AS_OF_HELP + " (default: the day after the last landed day)."),
    rebuild: bool = typer.Option(
        False, "--from-scratch", help="Drop every model derived from the events and build them anew (a new feature)."
    ),
) -> None:
    """dbt build: the day rollups, tonight's features and the spine's features and labels, and dbt's tests on them."""
    from models_py.warehouse import build_plan, dbt
    from models_py.warehouse.connection import session

    cfg = settings()
    with session(cfg) as con:
        day = parse_date(as_of) or build_plan.latest_as_of(con, cfg)
        build_plan.check_servable(con, cfg, day)
        if rebuild:
            dbt.drop_derived_on_spark(cfg)
            build_plan.drop_derived(con)
        plan = build_plan.plan_night(con, cfg, day)
    say(f"as-of date {day}: {build_plan.describe(plan)}")
    dbt.build(cfg, plan, progress=say)


@app.command()
@one_job_at_a_time
def train(
    as_of: str = typer.Option(None, help=AS_OF_HELP + " (default: latest); labels complete before it train."),
    promote: bool = typer.Option(True, help="Promote the new model if it beats the champion."),
) -> None:
    """Train a challenger on earlier cut-offs and register it (promoted only if better)."""
    from models_py.modeling import train as train_mod
    from models_py.ops import promotion, registry
    from models_py.warehouse import build_plan
    from models_py.warehouse.connection import session

    cfg = settings()
    with session(cfg) as con:
        day = parse_date(as_of) or build_plan.latest_as_of(con, cfg)
        meta = registry.store(con, cfg, train_mod.train(con, day, cfg, progress=say), day)
        say(f"model {meta.version}: validation ROC AUC {meta.metrics['roc_auc']:.3f}")
        if promote:
            promotion.promote_if_better(con, meta, cfg, say)


@app.command()
@one_job_at_a_time
def score(as_of: str = typer.Option(None, help=AS_OF_HELP + " (default: latest).")) -> None:
    """Score every visitor with the champion and write the day into the warehouse's score history."""
    from models_py.modeling import score as score_mod
    from models_py.modeling import score_in_spark
    from models_py.ops import registry
    from models_py.ops.run_log import new_run_id
    from models_py.warehouse import build_plan, publish, spark
    from models_py.warehouse.connection import session

    cfg = settings()
    with session(cfg) as con:
        day = parse_date(as_of) or build_plan.latest_as_of(con, cfg)
        build_plan.check_servable(con, cfg, day)
        model = registry.load_champion(con)
        if model is None:
            raise JobFailed("no champion model: run `propensity train` first")
        if cfg.engine == "spark":
            with spark.spark_session(cfg) as on_spark:
                scores = score_in_spark.score(on_spark, cfg, model, day, new_run_id()).scores
                score_in_spark.write_scores_table(on_spark, cfg, scores)
        else:
            scores = score_mod.score(con, model, day, new_run_id(), cfg.score_batch_rows, cfg.threads).scores
        publish.write_history(cfg, scores, day)
    typer.echo(f"scored {scores.num_rows:,} visitors as of {day} with {model.version}")


@app.command()
@one_job_at_a_time
def publish(as_of: str = typer.Option(None, help=AS_OF_HELP + " (default: the latest scored day).")) -> None:
    """Publish a scored day to what marketing reads (warehouse/serving.duckdb and the Parquet files beside it)."""
    from models_py.ops.run_log import new_run_id
    from models_py.warehouse import publish as publish_mod
    from models_py.warehouse import serving
    from models_py.warehouse.connection import session

    cfg = settings()
    with session(cfg):  # the writer's lock; an older warehouse's score history becomes files first
        latest = publish_mod.latest_scored_date(cfg)
        day = parse_date(as_of) or latest
        publish_mod.check_scored(cfg, day)
        path = serving.publish(cfg, day, latest, new_run_id())
    typer.echo(f"published scores as of {day} to {path}")


@app.command()
@one_job_at_a_time
def nightly(
    as_of: str = typer.Option(None, help=AS_OF_HELP + " (default: the day after the last landed day)."),
    simulate_if_empty: bool = typer.Option(False, help="With no events anywhere, simulate the scale-1 shop first."),
    force: bool = typer.Option(
        False, help="Rescore and republish even if nothing changed (the build is redone if what it reads changed)."
    ),
) -> None:
    """The whole nightly job: ingest, dbt build, train on schedule, score, publish."""
    from models_py.warehouse import dbt

    dbt.warm_up()  # dbt's process imports dbt while this one imports the job's libraries (~2 s of a core each)
    from jobs.nightly import run_nightly
    from models_py.world.simulate import simulate as run_simulation

    cfg = settings()
    started = time.perf_counter()
    no_events = not cfg.landing_dir.is_dir() or not any(cfg.landing_dir.glob("events*.csv"))
    if simulate_if_empty and no_events and not cfg.warehouse_path.exists():
        say("no events yet: simulating the scale-1 shop into data/landing/ first")
        run_simulation(cfg.landing_dir, cfg.truth_dir, scale=1.0, seed=42, progress=say)
    s = run_nightly(cfg, as_of=parse_date(as_of), say=say, force=force)
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in s.stage_seconds.items())
    trained = f" (trained tonight: {s.trained}, {'promoted' if s.promoted else 'champion kept'})" if s.trained else ""
    query = "select visitor_id, propensity, decile, segment from visitor_propensity_scores order by propensity desc"
    typer.echo(
        f"run {s.run_id} as of {s.as_of}: {s.rows_ingested:,} new rows in, {s.visitors_scored:,} visitors scored\n"
        f"model {s.model_version}{trained}\n"
        f"time {time.perf_counter() - started:.1f}s: {stages}\n"
        + (f"report: {s.report}\n" if s.report else "")
        + f"scores: {cfg.serving_path} (table visitor_propensity_scores), for example:\n"
        f"  python -c \"import duckdb; print(duckdb.connect('{cfg.serving_path}', read_only=True)"
        f".sql('{query} limit 10'))\""
    )


@app.command()
@one_job_at_a_time
def backfill(
    from_day: str = typer.Option(..., "--from", help="First as-of date, YYYY-MM-DD."),
    to_day: str = typer.Option(
        ..., "--to", help="Last as-of date, YYYY-MM-DD (at most the day after the last landed day)."
    ),
    force: bool = typer.Option(False, help="Rescore days already published with the current champion."),
) -> None:
    """Run the nightly job for every as-of date in a range, oldest first; each day's scores replace that day's."""
    from jobs.backfill import run_backfill

    run_backfill(settings(), parse_date(from_day, "--from"), parse_date(to_day, "--to"), force, say, typer.echo)


@app.command()
@one_job_at_a_time
def validate(as_of: str = typer.Option(None, help=AS_OF_HELP + " (default: the latest scored day).")) -> None:
    """Run the feature, drift and score gates on a day already built and scored (a dry run of tonight's checks)."""
    from models_py.ops import drift, gates, registry
    from models_py.ops.run_log import new_run_id
    from models_py.warehouse import publish as publish_mod
    from models_py.warehouse.connection import fetch_arrow, session

    cfg = settings()
    run_id = new_run_id()
    with session(cfg) as con:
        day = parse_date(as_of) or publish_mod.latest_scored_date(cfg)
        if day is None:
            raise JobFailed("nothing scored yet: run `propensity nightly` first")
        model = registry.load_champion(con)
        if model is None:
            raise JobFailed("no champion model: run `propensity train` first")
        previous = publish_mod.previous_scores(con, cfg, day, model.version)
        eligible = gates.check_features(con, cfg, run_id, day, previous)
        sample = drift.mart_sample(con, model, day)
        drift.check_feature_drift(con, cfg, run_id, day, model, sample, say)
        query = f"select visitor_id, propensity, decile from {publish_mod.HISTORY_TABLE} where as_of_date = ?"
        scores = fetch_arrow(con, query, [day])
        gates.check_scores(con, cfg, run_id, day, scores, eligible, previous)
        drift.check_score_drift(con, cfg, run_id, day, scores["propensity"].to_numpy(), say, model.version)
    typer.echo(f"every gate passed for {day} (results in ml.validation_results, ml.feature_drift, run {run_id})")
