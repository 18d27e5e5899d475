"""The run log (``ml.run_log``): one row per run, written when it starts and again when it ends, with stage times."""

from __future__ import annotations

import json
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from models_py import faults
from models_py.shop_calendar import utc_now_naive
from models_py.warehouse.schema import RUN_LOG


@dataclass
class RunSummary:
    run_id: str
    started_at: datetime = field(default_factory=utc_now_naive)
    as_of: date | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    rows_ingested: int = 0
    files_loaded: int = 0
    visitors_scored: int = 0
    model_version: str | None = None
    trained: str | None = None
    promoted: bool = False
    report: Path | None = None


def new_run_id() -> str:
    return utc_now_naive().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


@contextmanager
def stage(summary: RunSummary, name: str, say: Callable[[str], None]) -> Iterator[None]:
    """Time one stage into the summary; the fault-injection tests can kill the job as it enters it."""
    say(f"[{name}] ...")
    faults.point(name)
    started = time.perf_counter()
    try:
        yield
    finally:
        summary.stage_seconds[name] = round(time.perf_counter() - started, 2)
    say(f"[{name}] done in {summary.stage_seconds[name]:.1f}s")


def record(con: duckdb.DuckDBPyConnection, summary: RunSummary, status: str, error: str | None = None) -> None:
    con.execute(
        f"insert or replace into {RUN_LOG} values (?, ?, ?, now(), ?, ?, ?, ?, ?, ?)",
        [summary.run_id, summary.as_of, summary.started_at, status, error, json.dumps(summary.stage_seconds),
         summary.rows_ingested, summary.visitors_scored, summary.model_version],
    )  # fmt: skip


def close_abandoned(con: duckdb.DuckDBPyConnection, by_run: str) -> int:
    """Runs still marked ``running`` ended without recording it (killed, the machine stopped): say so. Called by a
    run that holds the job lock, so no other run can still be going."""
    closed = con.execute(
        f"""update {RUN_LOG} set status = 'failed', finished_at = now(),
                error = 'ended without recording an outcome (killed, or the machine stopped); found by run ' || ?
            where status = 'running' returning run_id""",
        [by_run],
    ).fetchall()
    return len(closed)


def failure_text(exc: BaseException) -> str:
    """What the run log keeps of a failure: the message, then the innermost frames."""
    return f"{type(exc).__name__}: {exc}"[:4000] + "\n" + "".join(traceback.format_exception(exc, limit=-3))[-2000:]
