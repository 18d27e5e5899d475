"""Shared fixtures: one small simulated world per test session (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models_py.simulator import simulate

SMALL_SCALE = 0.02
SMALL_SEED = 7


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2% shop: ~28k visitors, ~55k events over the full 138 days."""
    root = tmp_path_factory.mktemp("world")
    simulate(root / "landing", root / "truth", scale=SMALL_SCALE, seed=SMALL_SEED)
    return root
