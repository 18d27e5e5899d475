"""The job's failures, each carrying the exit code a scheduler acts on.

Every command ends through one handler (``jobs.cli.main``): a ``PropensityError`` prints its message and exits with
its code; anything else is a bug and exits 1 with its traceback. Either way the operator's failure hook runs.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUSY = 3
EXIT_GATE = 4


class PropensityError(Exception):
    """A failure the job understands: the message says what went wrong and what to do."""

    exit_code = EXIT_FAILED


class BadInputError(PropensityError):
    """Input the job refuses: a landing file, a payload, a date, a setting. Fix the input and rerun."""

    exit_code = EXIT_BAD_INPUT


class WarehouseBusyError(PropensityError):
    """Another process holds the warehouse (or the job's lock): nothing was changed; rerun when it is free."""

    exit_code = EXIT_BUSY


class GateFailed(PropensityError):
    """A validation or drift gate failed; nothing was published."""

    exit_code = EXIT_GATE


class JobFailed(PropensityError):
    """A stage could not complete (training, dbt, publishing, a model artifact); the published scores are unchanged."""

    exit_code = EXIT_FAILED
