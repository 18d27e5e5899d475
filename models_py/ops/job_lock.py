"""One job at a time: commands that change the warehouse, the models or the serving files take a lock first.

A second nightly run (cron firing twice, someone running `propensity nightly` by hand meanwhile) exits 3 at once
instead of waiting on DuckDB's file lock or interleaving with the first. The lock is an advisory ``flock`` on a file
beside the warehouse; the kernel releases it when the process ends, however it ends, so a killed run never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models_py.config import Settings
from models_py.errors import WarehouseBusyError


def lock_path(cfg: Settings) -> Path:
    return cfg.warehouse_path.with_name(f".{cfg.warehouse_path.name}.job.lock")


@contextmanager
def exclusive(cfg: Settings, what: str) -> Iterator[None]:
    path = lock_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise WarehouseBusyError(
                f"{what}: another propensity job is running on {cfg.warehouse_path} ({holder}); nothing was "
                "changed. Let it finish, or stop it, and run again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
