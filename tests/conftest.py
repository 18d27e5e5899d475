"""Shared fixtures: one small simulated world per test session (seconds, not minutes), run once through the nightly
job. Tests that change what they run on take a private copy (``own_world``); the shared one stays as built.

Every test that needs a simulated world is marked ``slow`` automatically: ``pytest -m "not slow"`` runs the pure
tests alone, in seconds.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from models_py.config import Settings, folder_env, settings
from models_py.world.simulate import simulate

SMALL_SCALE = 0.02
SMALL_SEED = 7
WORLD_FIXTURES = {"small_world", "pipeline", "own_world", "backtested", "two_nights"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if WORLD_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@dataclass
class World:
    """A run's folders and the environment that points the job at them."""

    root: Path
    env: dict[str, str]

    @property
    def cfg(self) -> Settings:
        return settings()


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2% shop: ~28k visitors, ~55k events over the full 138 days."""
    root = tmp_path_factory.mktemp("world")
    simulate(root / "landing", root / "truth", scale=SMALL_SCALE, seed=SMALL_SEED)
    return root


@pytest.fixture(scope="session")
def pipeline(small_world: Path, tmp_path_factory: pytest.TempPathFactory):
    """The small world run through one nightly job, in its own folders (data, warehouse, artifacts)."""
    from jobs.nightly import run_nightly

    root = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(small_world / "landing", root / "data" / "landing")
    shutil.copytree(small_world / "truth", root / "data" / "truth")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in folder_env(root).items():
            mp.setenv(k, v)
        cfg = settings()
        summary = run_nightly(cfg, say=lambda _: None)
        yield cfg, summary  # the environment keeps pointing at this run for the tests that read it


@pytest.fixture
def own_world(pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """A private copy of the pipeline's folders (data, warehouse, serving files, artifacts), with the environment
    pointing at it for the rest of the test (the copied serving database's views are pointed at the copy's files)."""
    from models_py.warehouse import serving
    from models_py.warehouse.connection import session

    cfg, _ = pipeline
    shutil.copytree(cfg.data_dir, tmp_path / "data")
    shutil.copytree(cfg.models_dir, tmp_path / "artifacts")
    shutil.copytree(cfg.warehouse_path.parent, tmp_path / "warehouse")  # the warehouse and the serving files
    env = folder_env(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    serving.ensure_database(serving.ServingFiles(settings().serving_path), "copy")
    with session(settings()) as con:
        # The copied registry still points at the pipeline's artifacts: repoint it at the copies.
        con.execute(
            "update ml.model_registry set artifact_path = ? || '/' || model_version", [env["PROPENSITY_MODELS_DIR"]]
        )
    return World(tmp_path, env)


@pytest.fixture(scope="session")
def two_nights(small_world: Path, tmp_path_factory: pytest.TempPathFactory):
    """The small world with its last day held back for a first night, then landed for a second night."""
    from jobs.nightly import run_nightly
    from models_py.warehouse.connection import session

    root = tmp_path_factory.mktemp("two_nights")
    landing = root / "data" / "landing"
    shutil.copytree(small_world / "landing", landing)
    last = sorted(landing.glob("events_*.csv"))[-1]
    held = last.rename(root / last.name)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in folder_env(root).items():
            mp.setenv(k, v)
        first = run_nightly(settings(), say=lambda _: None)
        held.rename(last)
        second = run_nightly(settings(), say=lambda _: None)
        with session(settings(), read_only=True) as con:
            plan = con.execute("select as_of_date, builds_features, builds_labels from ml.build_plan").fetchall()
        cfg = settings()
    # Yield outside the patched environment: later tests' CLI subprocesses must not inherit this warehouse.
    yield cfg, first, second, plan
