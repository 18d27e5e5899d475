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


class ResourceError(JobFailed):
    """The machine ran out of something (disk, memory) or a path is not what it must be; nothing was published."""


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def explain_environment_failure(exc: BaseException) -> PropensityError | None:
    """A failure of the machine rather than of the job's code, said plainly (it is not a bug to report): a full
    disk, memory exhausted, a path that is a folder. Looks through the whole chain, so a failed rollback after a
    full disk still reports the full disk."""
    for cause in _chain(exc):
        text = str(cause)
        errno_ = getattr(cause, "errno", None)
        if errno_ == 28 or "No space left" in text or "disk is full" in text.lower():
            return ResourceError(f"the disk is full ({text.strip()[:300]}); free space and run again")
        if isinstance(cause, MemoryError) or type(cause).__name__ == "OutOfMemoryException" or "Out of Memory" in text:
            return ResourceError(
                f"out of memory ({text.strip()[:300] or type(cause).__name__}); lower PROPENSITY_DUCKDB_MEMORY_LIMIT "
                "or PROPENSITY_SCORE_BATCH_ROWS, or run on a machine with more memory"
            )
        if isinstance(cause, IsADirectoryError) or errno_ == 21:
            return ResourceError(f"a path that must be a file is a folder: {getattr(cause, 'filename', text)}")
    return None
