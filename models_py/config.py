"""Paths and settings for every stage, in one place. Environment variables override the defaults."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else default


def _number(env: str, default: float, kind: type) -> float:
    value = os.environ.get(env, default)
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{env}={value!r} is not a{'n integer' if kind is int else ' number'}") from None


def _int(env: str, default: int) -> int:
    return int(_number(env, default, int))


def _float(env: str, default: float) -> float:
    return _number(env, default, float)


def _memory(env: str, default: str) -> str:
    value = os.environ.get(env, default).strip()
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value):
        raise ValueError(f"{env}={value!r} is not a memory size like '6GB' or '800MB'")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a stage needs to know about where things live and how the job behaves."""

    data_dir: Path = field(default_factory=lambda: _path("PROPENSITY_DATA_DIR", PROJECT_ROOT / "data"))
    warehouse_path: Path = field(
        default_factory=lambda: _path("PROPENSITY_WAREHOUSE", PROJECT_ROOT / "warehouse" / "propensity.duckdb")
    )
    serving_path: Path = field(
        default_factory=lambda: _path("PROPENSITY_SERVING", PROJECT_ROOT / "warehouse" / "serving.duckdb")
    )
    models_dir: Path = field(default_factory=lambda: _path("PROPENSITY_MODELS_DIR", PROJECT_ROOT / "artifacts"))
    reports_dir: Path = field(default_factory=lambda: _path("PROPENSITY_REPORTS_DIR", PROJECT_ROOT / "reports"))
    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    profiles_dir: Path = PROJECT_ROOT
    horizon_days: int = field(default_factory=lambda: _int("PROPENSITY_HORIZON_DAYS", 7))
    training_cutoffs: int = field(default_factory=lambda: _int("PROPENSITY_TRAINING_CUTOFFS", 6))
    cutoff_step_days: int = field(default_factory=lambda: _int("PROPENSITY_CUTOFF_STEP_DAYS", 7))
    retrain_every_days: int = field(default_factory=lambda: _int("PROPENSITY_RETRAIN_EVERY_DAYS", 7))
    promotion_margin: float = field(default_factory=lambda: _float("PROPENSITY_PROMOTION_MARGIN", 0.002))
    # Gates: tonight's population may differ from the last scored day's by this share, its mean score by this factor.
    row_count_tolerance: float = field(default_factory=lambda: _float("PROPENSITY_ROW_COUNT_TOLERANCE", 0.25))
    score_mean_ratio_limit: float = field(default_factory=lambda: _float("PROPENSITY_SCORE_MEAN_RATIO_LIMIT", 2.0))
    # Drift (population stability index): above warn the run says so, above fail it stops before publishing.
    drift_warn_psi: float = field(default_factory=lambda: _float("PROPENSITY_DRIFT_WARN_PSI", 0.1))
    drift_fail_psi: float = field(default_factory=lambda: _float("PROPENSITY_DRIFT_FAIL_PSI", 0.5))
    # The first run builds the whole spine of cut-offs; on a large shop it does so in passes of at most this many
    # event x cut-off rows, so the build stays within DuckDB's memory limit instead of spilling tens of GB.
    event_cutoffs_per_build: int = field(default_factory=lambda: _int("PROPENSITY_EVENT_CUTOFFS_PER_BUILD", 40_000_000))
    # Non-buyers kept for training are thinned below the usual quarter when there are more than this many: a large
    # shop's six cut-offs would otherwise be tens of millions of rows (the kept ones are up-weighted to match).
    max_training_negatives: int = field(default_factory=lambda: _int("PROPENSITY_MAX_TRAINING_NEGATIVES", 4_000_000))
    score_batch_rows: int = field(default_factory=lambda: _int("PROPENSITY_SCORE_BATCH_ROWS", 250_000))
    threads: int = field(default_factory=lambda: _int("PROPENSITY_THREADS", os.cpu_count() or 2))
    # DuckDB would otherwise take 80% of RAM per process; beyond this it spills to disk instead (dbt and the job
    # each get this much, and the job's own arrays come on top).
    duckdb_memory_limit: str = field(default_factory=lambda: _memory("PROPENSITY_DUCKDB_MEMORY_LIMIT", "6GB"))

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def truth_dir(self) -> Path:
        return self.data_dir / "truth"


def settings() -> Settings:
    """Settings read from the environment now (not at import), so tests can point stages elsewhere."""
    return Settings()
