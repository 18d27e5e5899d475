"""Commands for the data team: the out-of-time backtest, the ceiling of the simulated shop, the report, dbt docs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from jobs.commands.common import AS_OF_HELP, one_job_at_a_time, parse_date, say
from models_py.config import settings
from models_py.errors import BadInputError

app = typer.Typer()


@app.command()
@one_job_at_a_time
def backtest(
    last: int = typer.Option(None, help="Only the latest N test cut-offs (default: every one the data allows)."),
    as_json: bool = typer.Option(False, "--json", help="Print the machine-readable summary on standard output."),
    cutoffs: str = typer.Option(
        None,
        help="Test on these cut-offs only, comma-separated YYYY-MM-DD (month ends, say); they are built if the "
        "spine lacks them. Default: every testable spine cut-off but the development ones.",
    ),
) -> None:
    """Out-of-time backtest over the spine's cut-offs: the product's model against the seed's models and heuristics
    (never on PROPENSITY_DEVELOPMENT_CUTOFFS, where design choices are tried)."""
    from jobs.backtest import run_backtest

    chosen = [parse_date(d.strip(), "--cutoffs") for d in cutoffs.split(",") if d.strip()] if cutoffs else None
    summary, path = run_backtest(settings(), last, say, chosen)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in summary.items() if k != "curves"}, indent=1))
    else:
        typer.echo(backtest_table(summary))
    say(f"backtest {summary['run_id']}: {path} and table ml.backtest_metrics")


def backtest_table(summary: dict) -> str:
    columns = ("roc_auc", "auc_to_oracle", "pr_auc", "ece", "precision", "recall", "f1", "precision_at_1pct",
               "lift_top_decile")  # fmt: skip
    reserved = ", ".join(summary.get("development_cutoffs", [])) or "none"
    lines = [f"{len(summary['cutoffs'])} test cut-offs {summary['cutoffs'][0]}..{summary['cutoffs'][-1]}, mean +- sd "
             f"(development cut-offs, never tested on: {reserved})",
             f"{'model':20}" + "".join(f"{c:>19}" for c in columns)]  # fmt: skip
    for name, body in summary["models"].items():
        cells = []
        for c in columns:
            mean, sd = body["mean"].get(c), body["sd"].get(c)
            cells.append(f"{mean:.4f} +- {sd:.4f}" if mean is not None else "-")
        lines.append(f"{name:20}" + "".join(f"{cell:>19}" for cell in cells))
    lines += [f"skipped {s['as_of_date']}: {s['reason']}" for s in summary.get("skipped_cutoffs", [])]
    return "\n".join(lines)


@app.command()
@one_job_at_a_time
def ceiling(
    as_of: str = typer.Option(None, help=AS_OF_HELP + " of the test cut-off (default: the latest testable one)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on standard output."),
) -> None:
    """Simulated shop only: how far the oracle's lead is knowable, by retraining with its hidden state as features."""
    from jobs.backtest import run_ceiling

    result, path = run_ceiling(settings(), parse_date(as_of), say)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(f"{result['as_of_date']}: {result['visitors']:,} visitors, {result['buyers']:,} buyers, "
               f"oracle ROC AUC {result['oracle_roc_auc']:.4f}")  # fmt: skip
    base = result["variants"]["product"]["roc_auc"]
    for name, r in result["variants"].items():
        typer.echo(f"{name:>14}  ROC AUC {r['roc_auc']:.4f}  {r['auc_to_oracle']:.3f} of the oracle  "
                   f"{r['roc_auc'] - base:+.4f} over the product")  # fmt: skip
    say(f"ceiling: {path} (the next report shows it)")


@app.command("companion-agreement")
def companion_agreement(
    as_of: str = typer.Option(None, help=AS_OF_HELP + " of a scored night (default: the latest)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on standard output."),
) -> None:
    """How closely the 14-feature companion (what `predict` uses for the original payload) follows a night's scores,
    and the most that any model of those 14 features could (visitors with the same 14 values get one answer)."""
    from models_py.modeling.companion_agreement import measure, night_model_version
    from models_py.ops import registry
    from models_py.warehouse.connection import session
    from models_py.warehouse.schema import SCORE_HISTORY, scored_days

    cfg = settings()
    with session(cfg, read_only=True) as con:
        night = parse_date(as_of) or max(scored_days(cfg.score_history_dir), default=None)
        if night is None:
            raise BadInputError(f"{SCORE_HISTORY} is empty: run the nightly job first")
        result = measure(con, registry.load_version(con, night_model_version(con, night)), night, cfg.threads)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(f"{result['as_of_date']}: {result['visitors']:,} visitors scored by {result['model_version']}, "
               f"{result['distinct_payloads']:,} distinct 14-feature payloads; Spearman with the nightly scores: "
               f"companion {result['spearman']:.3f} ({result['spearman_top_decile']:.3f} within the top decile), "
               f"at most {result['bound']:.3f} for any model of the 14 features")  # fmt: skip


@app.command()
def report() -> None:
    """Write reports/<run>/index.html: the data, the champion, drift and the latest backtest, with PNG charts."""
    from models_py.ops import report as report_mod
    from models_py.ops.run_log import new_run_id
    from models_py.warehouse.connection import session

    cfg = settings()
    run_id = new_run_id()
    with session(cfg, read_only=True) as con:
        index = report_mod.refresh(con, cfg, run_id, f"Purchase propensity report {run_id}")
    typer.echo(f"report: {index}")


@app.command("check-report")
def check_report(
    index: Path = typer.Argument(None, help="A report's index.html (default: the newest under the reports folder)."),
) -> None:
    """Render a report in headless Chromium; fail, naming them, on images it cannot show or a page too wide."""
    from models_py.ops.report.browser_check import check

    if index is None:
        reports_dir = settings().reports_dir
        pages = sorted(reports_dir.glob("*/index.html"), key=lambda p: p.stat().st_mtime)
        if not pages:
            raise BadInputError(f"no report under {reports_dir}: run `propensity report` (or the nightly job) first")
        index = pages[-1]
    rendering = check(index)
    typer.echo(f"{index}: {len(rendering.images)} images shown, page {rendering.page_width} px in a "
               f"{rendering.viewport} px window")  # fmt: skip


@app.command()
def docs() -> None:
    """Generate dbt docs (lineage, every model and column) into dbt_project/target/."""
    from models_py.warehouse.dbt import run_dbt

    cfg = settings()
    run_dbt(cfg, ["docs", "generate"], progress=say)
    typer.echo(f"dbt docs: {cfg.dbt_project_dir / 'target' / 'index.html'} (serve with `dbt docs serve`)")
