"""What every command shares: progress on standard error and the as-of date option."""

from __future__ import annotations

from datetime import date

import typer

from models_py.errors import BadInputError

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
