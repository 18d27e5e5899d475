"""Small helpers the tests share: run the CLI as a scheduler would, and fingerprint a file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb


def cli(
    *args: str, env: dict | None = None, stdin: str | None = None, timeout: int = 900
) -> subprocess.CompletedProcess:
    """`propensity ARGS` in its own process, with the test's environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "jobs", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served_sha(cfg) -> str:
    """Fingerprint of what marketing reads now (tonight's scores file behind the serving database)."""
    from models_py.warehouse.serving import ServingFiles

    return sha(ServingFiles(cfg.serving_path).current)


def land_next_day(env: dict[str, str], share: float = 1.0) -> date:
    """Tonight's file: the browsing of the same weekday a week before (``share`` of it), moved on by seven days,
    plus one purchase; its volume is the usual one for that weekday, so the day-volume gate passes."""
    from models_py.config import settings
    from models_py.data.events_file import HEADER

    with duckdb.connect(env["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        last_ms = con.execute("select max(timestamp) from raw.events").fetchone()[0]
        calendar = settings().calendar
        day = calendar.shop_day(last_ms) + timedelta(days=1)
        start = calendar.day_start_ms(day)
        week_ms = 7 * 86_400_000
        rows = con.execute(
            "select timestamp + ?, visitorid, itemid from raw.events where timestamp >= ? and timestamp < ? "
            "and event = 'view' order by timestamp",
            [week_ms, start - week_ms, start - week_ms + 86_400_000],
        ).fetchall()
    rows = rows[: max(int(len(rows) * share), 1)]
    lines = [f"{ts},{v},view,{item}," for ts, v, item in rows]
    lines.append(f"{start + 3_600_000},{rows[0][1]},transaction,{rows[0][2]},424242")
    lines.sort(key=lambda line: int(line.split(",")[0]))
    (Path(env["PROPENSITY_DATA_DIR"]) / "landing" / f"events_{day}.csv").write_text(
        HEADER + "\n" + "\n".join(lines) + "\n"
    )
    return day + timedelta(days=1)
