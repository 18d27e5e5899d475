"""Fault injection for the crash tests: the job can be killed at a named point exactly as an OOM kill would."""

from __future__ import annotations

import os
import signal

FAULT_ENV = "PROPENSITY_FAULT_INJECT"


def point(name: str) -> None:
    """SIGKILL this process if PROPENSITY_FAULT_INJECT names this point (no cleanup, no finally blocks run)."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
