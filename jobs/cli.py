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


def main() -> None:
    sys.exit(app())
