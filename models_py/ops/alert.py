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
        # /bin/sh, as cron runs it: a hook that works in an interactive bash may not work here, so failures are said
        done = subprocess.run(command, shell=True, env=env, timeout=60, check=False, capture_output=True, text=True)  # noqa: S602
    except (OSError, subprocess.TimeoutExpired) as exc:
        say(f"warning: the failure hook PROPENSITY_ON_FAILURE did not run: {exc}")
        return
    if done.returncode != 0:
        say(f"warning: the failure hook PROPENSITY_ON_FAILURE failed (exit {done.returncode}, run by /bin/sh): "
            + (done.stderr.strip()[-500:] or "no message"))  # fmt: skip
