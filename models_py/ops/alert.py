"""The operator's failure hook: PROPENSITY_ON_FAILURE runs with the error and exit code in its environment."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable


def run_failure_hook(message: str, exit_code: int, say: Callable[[str], None]) -> None:
    command = os.environ.get("PROPENSITY_ON_FAILURE")
    if not command:
        return
    env = {**os.environ, "PROPENSITY_ERROR": message[:4000], "PROPENSITY_EXIT_CODE": str(exit_code)}
    try:
        subprocess.run(command, shell=True, env=env, timeout=60, check=False)  # noqa: S602 - the operator's own command
    except (OSError, subprocess.TimeoutExpired) as exc:
        say(f"warning: the failure hook did not run: {exc}")
