"""Commands about models: score one payload on demand, promote a registered model, roll back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from jobs.commands.common import one_job_at_a_time, say
from models_py.config import settings
from models_py.errors import BadInputError, JobFailed, PropensityError

app = typer.Typer()


@app.command()
def predict(
    payload: Path = typer.Argument(None, help="JSON file with the seed's payload (default: standard input)."),
) -> None:
    """Score one visitor from the seed's JSON payload with the champion model."""
    from models_py.modeling.predict import MAX_PAYLOAD_BYTES, predict_payload
    from models_py.ops import registry

    if payload is not None and not payload.is_file():
        raise BadInputError(f"{payload}: no such payload file")
    limit = MAX_PAYLOAD_BYTES + 1  # read no more than a payload can be: a huge input is refused, not loaded
    if payload:
        with open(payload, encoding="utf-8", errors="replace") as fh:
            text = fh.read(limit)
    else:
        text = sys.stdin.read(limit)
    cfg = settings()
    model = registry.load_pointed_champion(cfg.models_dir, _registered_champion_hash(cfg))
    if model is None:
        raise JobFailed("no champion model: run the nightly job first")
    result, unknown = predict_payload(model, text)
    if unknown:
        say(f"note: {len(unknown)} of the model's features were not in the payload and count as unknown: "
            + ", ".join(unknown))  # fmt: skip
    typer.echo(json.dumps(result))


def _registered_champion_hash(cfg) -> str | None:
    """The registry's hash of the champion, when the warehouse can be read now (the nightly job may hold it: then
    the pointer beside the models, written by the job, is trusted)."""
    from models_py.ops import registry
    from models_py.warehouse.connection import session

    if not cfg.warehouse_path.is_file():
        return None
    try:
        with session(cfg, read_only=True) as con:
            found = registry.champion(con)
    except PropensityError:
        return None
    return found[2] if found else None


@app.command()
@one_job_at_a_time
def promote(version: str = typer.Argument(..., help="Model version from ml.model_registry.")) -> None:
    """Make a registered model the champion (its artifact hash must match)."""
    from models_py.ops import registry
    from models_py.warehouse.connection import session

    with session(settings()) as con:
        registry.set_champion(con, version)
    typer.echo(f"{version} is now the champion")


@app.command()
@one_job_at_a_time
def rollback() -> None:
    """Go back to the previous champion."""
    from models_py.ops import promotion, registry
    from models_py.warehouse.connection import session

    with session(settings()) as con:
        previous = promotion.previous_champion(con)
        if previous is None:
            raise JobFailed("no previous champion to roll back to")
        registry.set_champion(con, previous)
    typer.echo(f"rolled back: {previous} is the champion again")
