"""Run dbt as a subprocess, so it opens and closes the warehouse itself (no lock held across stages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from models_py.config import Settings
from models_py.errors import JobFailed


class DbtError(JobFailed):
    """dbt failed; the message carries the lines that say why."""


def run_dbt(
    cfg: Settings, args: list[str], dbt_vars: dict | None = None, progress: Callable[[str], None] | None = None
) -> None:
    command = [os.path.join(sys.prefix, "bin", "dbt"), *args, "--vars", json.dumps({**cfg.calendar.dbt_vars(), **(dbt_vars or {})})]
    env = {
        **os.environ,
        "PROPENSITY_WAREHOUSE": str(cfg.warehouse_path),
        "PROPENSITY_DUCKDB_MEMORY_LIMIT": cfg.duckdb_memory_limit,
        "DBT_PROFILES_DIR": str(cfg.profiles_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    proc = subprocess.Popen(
        command, cwd=cfg.dbt_project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        if progress and any(k in line for k in (" OK ", "PASS", "FAIL", "ERROR", "WARN", "Done.")):
            progress("dbt | " + line.split("  ", 1)[-1].strip())
    if proc.wait() != 0:
        problems = [ln for ln in lines if any(k in ln for k in ("Error", "FAIL", "ERROR", "Got ", "lock"))]
        raise DbtError("dbt " + " ".join(args) + " failed:\n" + "\n".join((problems or lines)[-25:]))
