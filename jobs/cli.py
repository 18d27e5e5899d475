"""`propensity`: one command per pipeline stage."""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

import typer

from models_py.config import settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Nightly purchase-propensity scoring.",
)


def _say(message: str) -> None:
    typer.echo(message, err=True)


@app.callback()
def _check_settings() -> None:
    """A mistyped PROPENSITY_* variable stops every command up front with its name, before anything is touched."""
    try:
        settings()
    except ValueError as exc:
        _say(f"error: bad setting: {exc}")
        raise typer.Exit(2) from exc


@app.command()
def simulate(
    scale: float = typer.Option(1.0, help="1 = the size of the real Retail Rocket log (~2.76M events)."),
    seed: int = typer.Option(42, help="Same seed, same files, byte for byte."),
    out: Path = typer.Option(None, help="Where the daily event files go (default: data/landing/)."),
    truth_dir: Path = typer.Option(None, help="Where the hidden truth goes (default: data/truth/)."),
    stats: bool = typer.Option(False, "--stats", help="Print the shape next to the real dataset's, and the oracle."),
) -> None:
    """Simulate a Retail Rocket-shaped shop: one events_YYYY-MM-DD.csv per shop day, plus its hidden truth."""
    from models_py.simulator import simulate as run_simulation

    cfg = settings()
    out = out or cfg.landing_dir
    truth_dir = truth_dir or cfg.truth_dir
    started = time.perf_counter()
    totals = run_simulation(out, truth_dir, scale=scale, seed=seed, progress=_say)
    _say(
        f"simulated {totals['events']:,} events of {totals['visitors']:,} visitors in "
        f"{time.perf_counter() - started:.1f}s -> {out}"
    )
    if stats:
        ok = print_stats(out, truth_dir, scale, cfg.horizon_days)
        if not ok:
            raise typer.Exit(1)


def print_stats(landing: Path, truth_dir: Path, scale: float, horizon_days: int) -> bool:
    from models_py import shop_stats

    figures = shop_stats.shape_figures(landing, scale)
    typer.echo(f"{'figure':44} {'simulated':>14} {'real':>12}  tolerance")
    for f in figures:
        value = f"{f.value:,.0f}" if abs(f.value) >= 100 else f"{f.value:.3f}"
        typer.echo(f"{f.name:44} {value:>14} {f.real:>12}  {f.tolerance:18} {'ok' if f.ok else 'OUT'}")
    con = shop_stats.load_events(landing)
    typer.echo(f"\noracle: true P(buy in next {horizon_days} days) from the hidden state, against realised labels")
    typer.echo(
        f"{'as-of date':12} {'visitors':>10} {'buyers':>7} {'mean true p':>12} {'observed':>9} {'oracle AUC':>11}"
    )
    expected = observed = variance = 0.0
    aucs = []
    for as_of in shop_stats.default_cutoffs(horizon_days=horizon_days):
        c = shop_stats.oracle_check(con, truth_dir, as_of, horizon_days)
        typer.echo(
            f"{as_of.isoformat():12} {c.visitors:>10,} {c.buyers:>7,} {c.mean_true_probability:>12.5f} "
            f"{c.observed_rate:>9.5f} {c.oracle_roc_auc:>11.3f}"
        )
        expected += c.mean_true_probability * c.visitors
        observed += c.buyers
        variance += c.mean_true_probability * c.visitors  # Poisson bound on the sum of Bernoullis
        aucs.append(c.oracle_roc_auc)
    z = (observed - expected) / max(variance, 1e-9) ** 0.5
    mean_auc = sum(aucs) / len(aucs)
    typer.echo(
        f"\nall cut-offs: {observed:,.0f} buyers observed, {expected:,.1f} expected from the truth (z = {z:+.2f}); "
        f"mean oracle ROC AUC {mean_auc:.3f} (target 0.85-0.95 at scale 1)"
    )
    outside = [f.name for f in figures if not f.ok]
    consistent = abs(z) <= 3
    if outside or not consistent:
        typer.echo("outside tolerance: " + ", ".join(outside + ([] if consistent else ["truth vs labels"])))
    else:
        typer.echo("every figure within its tolerance")
    return not outside and consistent


@app.command("verify-events")
def verify_events(path: Path = typer.Argument(..., help="An events.csv (real or simulated day file).")) -> None:
    """Check a real or user-supplied events file strictly and print what it holds."""
    from models_py import events_file

    try:
        table = events_file.read_events(path)
    except events_file.EventsFileError as exc:
        _say(f"error: {exc}")
        raise typer.Exit(2) from exc
    s = events_file.summarise(table)
    first = date.fromtimestamp(s.first_ms / 1000)
    last = date.fromtimestamp(s.last_ms / 1000)
    typer.echo(f"{path}: valid ({events_file.HEADER})")
    typer.echo(f"  rows {s.rows:,}  visitors {s.visitors:,}  items {s.items:,}  duplicate rows {s.duplicate_rows:,}")
    typer.echo("  events " + "  ".join(f"{k} {v:,} ({100 * v / s.rows:.1f}%)" for k, v in s.event_counts.items()))
    typer.echo(f"  time range {first} .. {last} (UTC ms {s.first_ms} .. {s.last_ms})")
    size = path.stat().st_size
    if size == events_file.KAGGLE_EVENTS_SIZE:
        digest = events_file.sha256_of(path)
        match = digest == events_file.KAGGLE_EVENTS_SHA256
        typer.echo(f"  Kaggle events.csv: size matches, sha256 {'matches' if match else 'DIFFERS: ' + digest}")
    else:
        typer.echo(
            f"  not the published Kaggle file (size {size:,} bytes, the Kaggle file has "
            f"{events_file.KAGGLE_EVENTS_SIZE:,})"
        )


EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUSY, EXIT_GATE = 1, 2, 3, 4


def _fail(exc: BaseException) -> typer.Exit:
    """Known failures get one clear line and an exit code a scheduler can act on; the rest a traceback."""
    from models_py.dbt_runner import DbtError
    from models_py.events_file import EventsFileError
    from models_py.ingest import IngestError
    from models_py.registry import ArtifactError
    from models_py.train import TrainingError
    from models_py.validate import GateFailed
    from models_py.warehouse import WarehouseBusyError

    code = EXIT_FAILED
    if isinstance(exc, GateFailed):
        code = EXIT_GATE
    elif isinstance(exc, EventsFileError | IngestError | ValueError):  # PayloadError is a ValueError
        code = EXIT_BAD_INPUT
    elif isinstance(exc, WarehouseBusyError):
        code = EXIT_BUSY
    elif not isinstance(exc, DbtError | TrainingError | ArtifactError | RuntimeError | OSError):
        raise exc
    _say(f"error: {exc}")
    _say("the published scores were not changed.")
    return typer.Exit(code)


def _alert(message: str, exit_code: int) -> None:
    """Run the operator's PROPENSITY_ON_FAILURE command (mail, chat webhook...) with the error in its environment."""
    import os
    import subprocess

    command = os.environ.get("PROPENSITY_ON_FAILURE")
    if not command:
        return
    env = {**os.environ, "PROPENSITY_ERROR": message[:4000], "PROPENSITY_EXIT_CODE": str(exit_code)}
    try:
        subprocess.run(command, shell=True, env=env, timeout=60, check=False)  # noqa: S602 - the operator's own command
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say(f"warning: the failure hook did not run: {exc}")


def _as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"expected a date like 2015-09-18, got {value!r}") from exc


@app.command()
def ingest(
    files: list[Path] = typer.Argument(None, help="Event files (default: every events*.csv in data/landing/)."),
) -> None:
    """Load new landing files into raw.events (each file once; a bad file loads nothing)."""
    from jobs.nightly import new_run_id
    from models_py import ingest as ingest_mod
    from models_py import warehouse

    cfg = settings()
    try:
        with warehouse.session(cfg.warehouse_path) as con:
            r = ingest_mod.ingest(
                con, files or ingest_mod.landing_files(cfg.landing_dir), new_run_id(), cfg.landing_dir
            )
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    typer.echo(
        f"{len(r.files_loaded)} file(s) loaded, {r.rows_loaded:,} rows, {r.duplicates_dropped:,} duplicates dropped, "
        f"{len(r.files_skipped)} already loaded"
    )


@app.command()
def build(as_of: str = typer.Option(None, help="As-of date (default: the day after the last landed day).")) -> None:
    """dbt build: staging, features and labels for the as-of date's spine, and every dbt test."""
    from jobs import nightly
    from models_py import warehouse
    from models_py.dbt_runner import run_dbt

    cfg = settings()
    try:
        with warehouse.session(cfg.warehouse_path) as con:
            day = _as_of(as_of) or nightly.latest_as_of(con)
            dates = nightly.feature_dates_to_build(con, day, cfg)
        run_dbt(cfg, ["build"], nightly.dbt_vars(day, dates, cfg), progress=_say)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc


@app.command()
def train(
    as_of: str = typer.Option(None, help="Train with labels complete before this date (default: latest)."),
    promote: bool = typer.Option(True, help="Promote the new model if it beats the champion."),
) -> None:
    """Train a challenger on earlier cut-offs and register it (promoted only if better)."""
    from jobs import nightly
    from models_py import train as train_mod
    from models_py import warehouse

    cfg = settings()
    try:
        with warehouse.session(cfg.warehouse_path) as con:
            day = _as_of(as_of) or nightly.latest_as_of(con)
            _, meta = train_mod.train(con, day, cfg, progress=_say)
            if promote:
                train_mod.promote_if_better(con, meta, cfg, _say)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc


@app.command()
def score(as_of: str = typer.Option(None, help="As-of date (default: latest).")) -> None:
    """Score every visitor with the champion and write the day into the warehouse's score history."""
    from jobs import nightly
    from models_py import publish, registry, warehouse
    from models_py import score as score_mod

    cfg = settings()
    try:
        with warehouse.session(cfg.warehouse_path) as con:
            day = _as_of(as_of) or nightly.latest_as_of(con)
            model = registry.load_champion(con)
            if model is None:
                raise RuntimeError("no champion model: run `propensity train` first")
            scores = score_mod.score(con, model, day, nightly.new_run_id(), cfg.score_batch_rows, cfg.threads)
            publish.write_history(con, scores, day)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    typer.echo(f"scored {scores.num_rows:,} visitors as of {day} with {model.meta.version}")


@app.command()
def publish(as_of: str = typer.Option(None, help="As-of date to publish (default: latest scored).")) -> None:
    """Publish scores to warehouse/serving.duckdb (temp file + atomic rename)."""
    from jobs import nightly
    from models_py import publish as publish_mod
    from models_py import warehouse

    cfg = settings()
    try:
        with warehouse.session(cfg.warehouse_path) as con:
            day = _as_of(as_of) or con.execute(f"select max(as_of_date) from {publish_mod.HISTORY_TABLE}").fetchone()[0]
            path = publish_mod.publish_serving(con, cfg.serving_path, day, nightly.new_run_id())
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    typer.echo(f"published scores as of {day} to {path}")


@app.command()
def nightly(
    as_of: str = typer.Option(None, help="As-of date (default: the day after the last landed day)."),
    simulate_if_empty: bool = typer.Option(False, help="With no events anywhere, simulate the scale-1 shop first."),
    force: bool = typer.Option(False, help="Rebuild, rescore and republish even if nothing changed."),
) -> None:
    """The whole nightly job: ingest, dbt build, train on schedule, score, publish."""
    from jobs.nightly import run_nightly
    from models_py import ingest as ingest_mod
    from models_py.simulator import simulate as run_simulation

    cfg = settings()
    started = time.perf_counter()
    if simulate_if_empty and not ingest_mod.landing_files(cfg.landing_dir) and not cfg.warehouse_path.exists():
        _say("no events yet: simulating the scale-1 shop into data/landing/ first")
        run_simulation(cfg.landing_dir, cfg.truth_dir, scale=1.0, seed=42, progress=_say)
    try:
        s = run_nightly(cfg, as_of=_as_of(as_of), say=_say, force=force)
    except Exception as exc:  # noqa: BLE001
        failure = _fail(exc)
        _alert(str(exc), failure.exit_code)
        raise failure from exc
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in s.stage_seconds.items())
    trained = ""
    if s.trained:
        trained = f" (trained tonight: {s.trained}, {'promoted' if s.promoted else 'champion kept'})"
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
def backfill(
    from_day: str = typer.Option(..., "--from", help="First as-of date, e.g. 2015-09-01."),
    to_day: str = typer.Option(..., "--to", help="Last as-of date (at most the day after the last landed day)."),
    force: bool = typer.Option(False, help="Rescore days already published with the current champion."),
) -> None:
    """Run the nightly job for every as-of date in a range, oldest first; each day's scores replace that day's."""
    from datetime import timedelta

    from jobs.nightly import run_nightly

    cfg = settings()
    first, last = _as_of(from_day), _as_of(to_day)
    if first > last:
        raise typer.BadParameter(f"--from {first} is after --to {last}")
    day = first
    while day <= last:
        _say(f"== backfill {day}")
        try:
            s = run_nightly(cfg, as_of=day, say=_say, force=force)
        except Exception as exc:  # noqa: BLE001
            failure = _fail(exc)
            _say(f"backfill stopped at {day}; days before it are done, rerun from {day}")
            _alert(f"backfill stopped at {day}: {exc}", failure.exit_code)
            raise failure from exc
        typer.echo(f"{day}: {s.visitors_scored:,} visitors scored with {s.model_version} (run {s.run_id})")
        day += timedelta(days=1)


@app.command()
def validate(as_of: str = typer.Option(None, help="As-of date (default: the latest scored day).")) -> None:
    """Run the feature, drift and score gates on a day already built and scored (a dry run of tonight's checks)."""
    from jobs import nightly
    from models_py import publish as publish_mod
    from models_py import registry, warehouse

    cfg = settings()
    run_id = nightly.new_run_id()
    try:
        with warehouse.session(cfg.warehouse_path) as con:
            day = _as_of(as_of) or publish_mod.latest_scored_date(con)
            if day is None:
                raise RuntimeError("nothing scored yet: run `propensity nightly` first")
            model = registry.load_champion(con)
            if model is None:
                raise RuntimeError("no champion model: run `propensity train` first")
            previous = nightly.previous_scores(con, day)
            eligible = nightly.check_features(con, cfg, run_id, day, previous)
            nightly.check_feature_drift(con, cfg, run_id, day, model, _say)
            query = f"select visitor_id, propensity, decile from {publish_mod.HISTORY_TABLE} where as_of_date = ?"
            scores = warehouse.fetch_arrow(con, query, [day])
            nightly.check_scores(con, cfg, run_id, day, scores, eligible, previous, _say)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    typer.echo(f"every gate passed for {day} (results in ml.validation_results, ml.feature_drift, run {run_id})")


@app.command()
def predict(
    payload: Path = typer.Argument(None, help="JSON file with the seed's payload (default: standard input)."),
) -> None:
    """Score one visitor from the seed's JSON payload with the champion model."""
    import json

    from models_py import predict as predict_mod
    from models_py import registry

    cfg = settings()
    text = payload.read_text() if payload else sys.stdin.read()
    try:
        model = registry.load_pointed_champion(cfg.models_dir)
        if model is None:
            raise RuntimeError("no champion model: run the nightly job first")
        result, unknown = predict_mod.predict_payload(model, text)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    if unknown:
        _say(
            f"note: {len(unknown)} of the model's features were not in the payload and count as unknown: "
            + ", ".join(unknown)
        )
    typer.echo(json.dumps(result))


@app.command()
def promote(version: str = typer.Argument(..., help="Model version from ml.model_registry.")) -> None:
    """Make a registered model the champion (its artifact hash must match)."""
    from models_py import registry, warehouse

    try:
        with warehouse.session(settings().warehouse_path) as con:
            registry.set_champion(con, version)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    typer.echo(f"{version} is now the champion")


@app.command()
def rollback() -> None:
    """Go back to the previous champion."""
    from models_py import registry, warehouse

    try:
        with warehouse.session(settings().warehouse_path) as con:
            previous = registry.previous_champion(con)
            if previous is None:
                raise RuntimeError("no previous champion to roll back to")
            registry.set_champion(con, previous)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    typer.echo(f"rolled back: {previous} is the champion again")


@app.command()
def oracle(
    as_of: str = typer.Option(..., help="Cut-off date."),
    horizon_days: int = typer.Option(7),
    out: Path = typer.Option(None, help="Write the table as Parquet here (default: print a summary)."),
) -> None:
    """The simulator's true purchase probabilities at a cut-off (visitor_id, as_of_date, horizon_days, probability)."""
    import pyarrow.parquet as pq

    from models_py.oracle import true_probabilities

    table = true_probabilities(settings().truth_dir, _as_of(as_of), horizon_days)
    if out:
        pq.write_table(table, out)
        typer.echo(f"{table.num_rows:,} rows -> {out}")
    else:
        p = table["true_probability"].to_numpy()
        typer.echo(f"{table.num_rows:,} visitors, mean true probability {p.mean():.5f}, max {p.max():.3f}")


@app.command()
def backtest(
    last: int = typer.Option(None, help="Only the latest N test cut-offs (default: every one the data allows)."),
    as_json: bool = typer.Option(False, "--json", help="Print the machine-readable summary on standard output."),
) -> None:
    """Out-of-time backtest over weekly cut-offs: the product's model against the seed's models and heuristics."""
    import json

    from jobs.backtest import run_backtest

    cfg = settings()
    try:
        summary, path = run_backtest(cfg, last, _say)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "curves"}, indent=1))
    else:
        typer.echo(backtest_table(summary))
    _say(f"backtest {summary['run_id']}: {path} and table ml.backtest_metrics")


def backtest_table(summary: dict) -> str:
    columns = ("roc_auc", "auc_to_oracle", "pr_auc", "ece", "precision", "recall", "f1", "precision_at_1pct",
               "lift_top_decile")  # fmt: skip
    lines = [f"{len(summary['cutoffs'])} test cut-offs {summary['cutoffs'][0]}..{summary['cutoffs'][-1]}, mean +- sd",
             f"{'model':20}" + "".join(f"{c:>19}" for c in columns)]  # fmt: skip
    for name, body in summary["models"].items():
        cells = []
        for c in columns:
            mean, sd = body["mean"].get(c), body["sd"].get(c)
            cells.append(f"{mean:.4f} +- {sd:.4f}" if mean is not None else "-")
        lines.append(f"{name:20}" + "".join(f"{cell:>19}" for cell in cells))
    return "\n".join(lines)


@app.command()
def ceiling(
    as_of: str = typer.Option(None, help="Test cut-off (default: the latest one the backtest can test)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on standard output."),
) -> None:
    """Simulated shop only: how far the oracle's lead is knowable, by retraining with its hidden state as features."""
    import json

    from jobs.backtest import save_ceiling
    from models_py import backtest, ceiling, warehouse

    cfg = settings()
    try:
        with warehouse.session(cfg.warehouse_path, read_only=True) as con:
            day = _as_of(as_of) or backtest.backtest_dates(con, cfg.horizon_days, cfg.training_cutoffs)[-1]
            _say(f"ceiling on {day}: the product's model, then again with each part of the hidden state added")
            result = ceiling.run(
                con, cfg.truth_dir, day, cfg.horizon_days, cfg.training_cutoffs, cfg.threads,
                cfg.max_training_negatives, progress=_say,
            )  # fmt: skip
        path = save_ceiling(cfg.reports_dir, result)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(f"{day}: {result['visitors']:,} visitors, {result['buyers']:,} buyers, "
               f"oracle ROC AUC {result['oracle_roc_auc']:.4f}")  # fmt: skip
    base = result["variants"]["product"]["roc_auc"]
    for name, r in result["variants"].items():
        typer.echo(f"{name:>14}  ROC AUC {r['roc_auc']:.4f}  {r['auc_to_oracle']:.3f} of the oracle  "
                   f"{r['roc_auc'] - base:+.4f} over the product")  # fmt: skip
    _say(f"ceiling: {path} (the next report shows it)")


@app.command()
def report() -> None:
    """Write reports/<run>/index.html: the data, the champion, drift and the latest backtest, with PNG charts."""
    from jobs.backtest import latest_backtest, latest_ceiling
    from jobs.nightly import new_run_id
    from models_py import warehouse
    from models_py.report import write_report

    cfg = settings()
    try:
        with warehouse.session(cfg.warehouse_path, read_only=True) as con:
            run_id = new_run_id()
            index = write_report(
                con, cfg.reports_dir / run_id, cfg.models_dir, latest_backtest(cfg.reports_dir),
                f"Purchase propensity report {run_id}", latest_ceiling(cfg.reports_dir),
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    typer.echo(f"report: {index}")


@app.command()
def docs() -> None:
    """Generate dbt docs (lineage, every model and column) into dbt_project/target/."""
    from jobs import nightly
    from models_py import warehouse
    from models_py.dbt_runner import run_dbt

    cfg = settings()
    try:
        vars_ = None
        if cfg.warehouse_path.exists():
            with warehouse.session(cfg.warehouse_path, read_only=True) as con:
                day = nightly.latest_as_of(con)
            vars_ = {"as_of_date": day.isoformat()}
        run_dbt(cfg, ["docs", "generate"], vars_, progress=_say)
    except Exception as exc:  # noqa: BLE001
        raise _fail(exc) from exc
    typer.echo(f"dbt docs: {cfg.dbt_project_dir / 'target' / 'index.html'} (serve with `dbt docs serve`)")


def main() -> None:
    sys.exit(app())
