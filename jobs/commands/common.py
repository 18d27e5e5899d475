"""What every command shares: progress on standard error and the as-of date option."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date

import typer

from models_py.config import settings
from models_py.errors import BadInputError
from models_py.ops import job_lock

AS_OF_HELP = "As-of date, YYYY-MM-DD: scores use events before this shop day starts"


def say(message: str) -> None:
    typer.echo(message, err=True)


def parse_date(value: str | None, option: str = "--as-of") -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInputError(f"{option} expects a date as YYYY-MM-DD, e.g. 2015-09-18; got {value!r}") from None


def one_job_at_a_time(command: Callable) -> Callable:
    """A command that changes the warehouse, the models or the serving files runs alone: a second one exits 3 at
    once (see ops/job_lock.py) instead of waiting on DuckDB's lock or interleaving with the first."""

    @functools.wraps(command)
    def locked(*args, **kwargs):
        with job_lock.exclusive(settings(), f"propensity {command.__name__}"):
            return command(*args, **kwargs)

    return locked
