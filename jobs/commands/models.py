"""Commands about models: score one payload on demand, promote a registered model, roll back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from jobs.commands.common import say
from models_py.config import settings
from models_py.errors import BadInputError, JobFailed

app = typer.Typer()


@app.command()
def predict(
    payload: Path = typer.Argument(None, help="JSON file with the seed's payload (default: standard input)."),
) -> None:
    """Score one visitor from the seed's JSON payload with the champion model."""
    from models_py.modeling.predict import predict_payload
    from models_py.ops import registry

    if payload is not None and not payload.is_file():
        raise BadInputError(f"{payload}: no such payload file")
    text = payload.read_text() if payload else sys.stdin.read()
    model = registry.load_pointed_champion(settings().models_dir)
    if model is None:
        raise JobFailed("no champion model: run the nightly job first")
    result, unknown = predict_payload(model, text)
    if unknown:
        say(f"note: {len(unknown)} of the model's features were not in the payload and count as unknown: "
            + ", ".join(unknown))  # fmt: skip
    typer.echo(json.dumps(result))


@app.command()
def promote(version: str = typer.Argument(..., help="Model version from ml.model_registry.")) -> None:
    """Make a registered model the champion (its artifact hash must match)."""
    from models_py.ops import registry
    from models_py.warehouse.connection import session

    with session(settings()) as con:
        registry.set_champion(con, version)
    typer.echo(f"{version} is now the champion")


@app.command()
def rollback() -> None:
    """Go back to the previous champion."""
    from models_py.ops import registry
    from models_py.warehouse.connection import session

    with session(settings()) as con:
        previous = registry.previous_champion(con)
        if previous is None:
            raise JobFailed("no previous champion to roll back to")
        registry.set_champion(con, previous)
    typer.echo(f"rolled back: {previous} is the champion again")
