"""Commands about the shop's data: simulate one, check an events file, load files, the simulator's truth."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from jobs.commands.common import one_job_at_a_time, parse_date, say
from models_py.config import settings
from models_py.data.events_file import EVENT_TYPES
from models_py.errors import BadInputError, JobFailed

app = typer.Typer()


@app.command()
def simulate(
    scale: float = typer.Option(1.0, help="1 = the size of the real Retail Rocket log (~2.76M events)."),
    seed: int = typer.Option(42, help="Same seed, same files, byte for byte."),
    out: Path = typer.Option(None, help="Where the daily event files go (default: data/landing/)."),
    truth_dir: Path = typer.Option(None, help="Where the hidden truth goes (default: data/truth/)."),
    param: list[str] = typer.Option(None, help="Change a shop parameter, NAME=VALUE (repeatable)."),
    stats: bool = typer.Option(False, "--stats", help="Print the shape next to the real dataset's, and the oracle."),
    events: str = typer.Option(
        None, help="Write only these event types, comma-separated ('transaction': an order system's export)."
    ),
) -> None:
    """Simulate a Retail Rocket-shaped shop: one events_YYYY-MM-DD.csv per shop day, plus its hidden truth."""
    from models_py.world import shop_stats
    from models_py.world.parameters import ShopParameters
    from models_py.world.simulate import simulate as run_simulation

    cfg = settings()
    out, truth_dir = out or cfg.landing_dir, truth_dir or cfg.truth_dir
    params = ShopParameters().with_overrides(param or [])
    started = time.perf_counter()
    kinds = tuple(e.strip() for e in events.split(",") if e.strip()) if events else None
    unknown = sorted(set(kinds or ()) - set(EVENT_TYPES))
    if unknown:
        raise BadInputError(f"--events: unknown event type(s) {', '.join(unknown)}; expected {', '.join(EVENT_TYPES)}")
    totals = run_simulation(out, truth_dir, scale=scale, seed=seed, params=params, progress=say, event_types=kinds)
    say(f"simulated {totals['events']:,} events of {totals['visitors']:,} visitors in "
        f"{time.perf_counter() - started:.1f}s -> {out}")  # fmt: skip
    if stats:
        lines, ok = shop_stats.stats_report(out, truth_dir, scale, cfg.horizon_days)
        typer.echo("\n".join(lines))
        if not ok:
            raise JobFailed("the simulated shop is outside the real dataset's tolerances (see above)")


@app.command("verify-events")
def verify_events(path: Path = typer.Argument(..., help="An events.csv (real or simulated day file).")) -> None:
    """Check a real or user-supplied events file strictly and print what it holds."""
    from models_py.data import events_file

    typer.echo("\n".join(events_file.describe(path)))


@app.command()
@one_job_at_a_time
def ingest(
    files: list[Path] = typer.Argument(None, help="Event files (default: every events*.csv in data/landing/)."),
) -> None:
    """Load new landing files into raw.events (each file once; a bad file loads nothing), through the same gates as
    the nightly job's (their results in ml.validation_results)."""
    from models_py.data import ingest as ingest_mod
    from models_py.data import landing
    from models_py.ops import gates
    from models_py.ops.run_log import new_run_id
    from models_py.warehouse.connection import session

    cfg = settings()
    run_id = new_run_id()
    with session(cfg, create=True) as con:
        tonight = files or landing.ready_files(cfg.landing_dir, say)
        r = ingest_mod.ingest(con, tonight, run_id, cfg.calendar, cfg.landing_dir, gates.landing_gate(con, cfg, run_id),
                              cfg.max_gap_days, cfg.earliest_event_ms)  # fmt: skip
    typer.echo(
        f"{len(r.files_loaded)} file(s) loaded, {r.rows_loaded:,} rows, {r.duplicates_dropped:,} duplicates dropped, "
        f"{len(r.files_skipped)} already loaded"
    )


@app.command()
@one_job_at_a_time
def unload(file_name: str = typer.Argument(..., help="The name of a loaded events file, as in raw.load_log.")) -> None:
    """Take a loaded events file back out (with every later load), so a corrected file can be landed."""
    from models_py.ops.unload import unload as take_out
    from models_py.warehouse.connection import session

    with session(settings()) as con:
        done = take_out(con, settings(), Path(file_name).name)
    typer.echo(
        f"unloaded {', '.join(done.files)}: {done.events:,} events from shop day {done.first_day} on; "
        f"{done.scored_days} scored day(s) and {len(done.models_withdrawn)} model(s) built on them withdrawn; "
        f"champion now {done.champion or 'none (the next night trains one)'}. The next night rebuilds the dbt "
        "models derived from the events. Land the corrected file(s), then run `propensity nightly`."
    )


@app.command()
def oracle(
    as_of: str = typer.Option(..., help="Cut-off date, YYYY-MM-DD."),
    horizon_days: int = typer.Option(7),
    out: Path = typer.Option(None, help="Write the table as Parquet here (default: print a summary)."),
) -> None:
    """The simulator's true purchase probabilities at a cut-off (visitor_id, as_of_date, horizon_days, probability)."""
    import pyarrow.parquet as pq

    from models_py.world.oracle import true_probabilities

    table = true_probabilities(settings().truth_dir, parse_date(as_of), horizon_days)
    if out:
        pq.write_table(table, out)
        typer.echo(f"{table.num_rows:,} rows -> {out}")
    else:
        p = table["true_probability"].to_numpy()
        typer.echo(f"{table.num_rows:,} visitors, mean true probability {p.mean():.5f}, max {p.max():.3f}")


@app.command("settings")
def show_settings() -> None:
    """Every PROPENSITY_* setting with the value in force, its default and what it does."""
    from models_py.config import describe

    for env, value, default, meaning in describe():
        typer.echo(f"{env}={value}" + ("" if value == default else f"  (default {default})") + f"\n    {meaning}")
