"""`propensity backfill`: the nightly job for every as-of date in a range, oldest first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from jobs.nightly import run_nightly
from models_py.config import Settings
from models_py.errors import BadInputError, PropensityError


class BackfillStopped(PropensityError):
    """A day of the range failed; keeps that failure's exit code."""

    def __init__(self, day: date, cause: PropensityError):
        super().__init__(f"backfill stopped at {day} (days before it are done, rerun from {day}): {cause}")
        self.exit_code = cause.exit_code


def run_backfill(
    cfg: Settings, first: date, last: date, force: bool, say: Callable[[str], None], done: Callable[[str], None]
) -> None:
    """Each day's scores replace that day's; a failure stops the range there and says where to resume."""
    if first > last:
        raise BadInputError(f"--from {first} is after --to {last}")
    day = first
    while day <= last:
        say(f"== backfill {day}")
        try:
            s = run_nightly(cfg, as_of=day, say=say, force=force)
        except PropensityError as exc:
            raise BackfillStopped(day, exc) from exc
        done(f"{day}: {s.visitors_scored:,} visitors scored with {s.model_version} (run {s.run_id})")
        day += timedelta(days=1)
