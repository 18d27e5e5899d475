"""Small helpers the tests share: run the CLI as a scheduler would, and fingerprint a file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path


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
