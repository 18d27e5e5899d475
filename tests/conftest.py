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


@pytest.fixture(scope="session")
def pipeline(small_world: Path, tmp_path_factory: pytest.TempPathFactory):
    """The small world run through one nightly job, in its own folders (data, warehouse, artifacts)."""
    import shutil

    from jobs.nightly import run_nightly
    from models_py.config import settings

    root = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(small_world / "landing", root / "data" / "landing")
    env = {
        "PROPENSITY_DATA_DIR": str(root / "data"),
        "PROPENSITY_WAREHOUSE": str(root / "warehouse" / "propensity.duckdb"),
        "PROPENSITY_SERVING": str(root / "warehouse" / "serving.duckdb"),
        "PROPENSITY_MODELS_DIR": str(root / "artifacts"),
        "PROPENSITY_REPORTS_DIR": str(root / "reports"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        cfg = settings()
        summary = run_nightly(cfg, say=lambda _: None)
        yield cfg, summary
