"""Paths and settings for every stage, in one place: the table in settings.toml, overridden by PROPENSITY_* variables.

Every value is checked when the settings are read (type, range, paths that must not overlap), so a mistyped
variable stops any command up front, naming the variable, before anything is touched.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from pathlib import Path

from models_py.errors import BadInputError
from models_py.shop_calendar import ShopCalendar

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPEC: dict[str, dict] = tomllib.loads((Path(__file__).with_name("settings.toml")).read_text())
MEMORY = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)")


class SettingsError(BadInputError):
    """A PROPENSITY_* variable that cannot be used; names the variable and its value."""


@dataclass(frozen=True)
class Settings:
    """Everything a stage needs to know about where things live and how the job behaves (see settings.toml)."""

    data_dir: Path
    warehouse_path: Path
    serving_path: Path
    serving_nights: int
    engine: str
    spark_dir: Path
    spark_master: str
    spark_driver_memory: str
    keep_nightly_features: int
    models_dir: Path
    reports_dir: Path
    day_start_hour_utc: int
    horizon_days: int
    feature_windows_days: tuple[int, ...]
    training_cutoffs: int
    cutoff_step_days: int
    cutoff_anchor: date
    development_cutoffs: tuple[date, ...]
    earliest_event_date: date
    max_gap_days: int
    day_volume_min_ratio: float
    retrain_every_days: int
    promotion_margin: float
    row_count_tolerance: float
    score_mean_ratio_limit: float
    drift_warn_psi: float
    drift_fail_psi: float
    drift_warn_only_features: str
    max_visitor_cutoffs_per_build: int
    max_cutoff_visitors: int
    max_visitors_per_insert: int
    max_training_negatives: int
    max_validation_rows: int
    score_batch_rows: int
    threads: int
    duckdb_memory_limit: str
    duckdb_disabled_compression: str

    dbt_project_dir = PROJECT_ROOT / "dbt_project"
    profiles_dir = PROJECT_ROOT

    @property
    def calendar(self) -> ShopCalendar:
        return ShopCalendar(self.day_start_hour_utc)

    def on_spine(self, day: date) -> bool:
        """Whether a date is one of the training spine's cut-offs (the anchor plus whole steps)."""
        return (day - self.cutoff_anchor).days % self.cutoff_step_days == 0

    @property
    def earliest_event_ms(self) -> int:
        return int(datetime.combine(self.earliest_event_date, time(), UTC).timestamp() * 1000)

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def spark_sources_dir(self) -> Path:
        """The raw tables and the build plan as Parquet folders (<schema>.<table>/), the Spark engine's sources."""
        return self.spark_dir / "sources"

    @property
    def spark_tables_dir(self) -> Path:
        return self.spark_dir / "tables"

    @property
    def score_history_dir(self) -> Path:
        """Every scored night as a Parquet file beside the warehouse (ml.visitor_propensity_score_history reads
        them): a night writes one file instead of inserting millions of strings into the warehouse."""
        return self.warehouse_path.with_name(f"{self.warehouse_path.stem}_score_history")

    @property
    def truth_dir(self) -> Path:
        return self.data_dir / "truth"


def _value(name: str, spec: dict, raw: object) -> object:
    """One setting's value from its variable (a string) or its default, converted and range-checked."""
    env, kind = spec["env"], spec["type"]
    if kind == "path":
        return (PROJECT_ROOT / Path(str(raw)).expanduser()).resolve()
    if kind == "date":
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            raise SettingsError(f"{env}={raw!r} is not a date like 2015-01-02 (YYYY-MM-DD)") from None
    if kind == "dates":
        try:
            return tuple(sorted(date.fromisoformat(d.strip()) for d in str(raw).split(",") if d.strip()))
        except ValueError:
            raise SettingsError(f"{env}={raw!r} is not a comma-separated list of dates like 2015-08-21") from None
    if kind == "days":
        return _days(env, spec, raw)
    if kind == "str":
        if "choices" in spec and str(raw).strip() not in spec["choices"]:
            raise SettingsError(f"{env}={raw!r} is not one of {', '.join(spec['choices'])}")
        return str(raw).strip()
    if kind == "memory":
        if str(raw).strip() != "auto" and not MEMORY.fullmatch(str(raw).strip()):
            raise SettingsError(f"{env}={raw!r} is not 'auto' or a memory size like '6GB' or '800MB'")
        return str(raw).strip()
    convert = int if kind == "int" else float
    try:
        value = convert(raw)
    except ValueError:
        raise SettingsError(f"{env}={raw!r} is not a{'n integer' if convert is int else ' number'}") from None
    low, high = spec.get("min"), spec.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        allowed = f"from {low}" + (f" to {high}" if high is not None else " up")
        raise SettingsError(f"{env}={raw!r} is out of range: {name} must be {allowed}")
    return value


def _days(env: str, spec: dict, raw: object) -> tuple[int, ...]:
    """A comma-separated list of day counts, each in range, holding every required one."""
    try:
        days = tuple(sorted({int(d) for d in str(raw).split(",") if d.strip()}))
    except ValueError:
        raise SettingsError(f"{env}={raw!r} is not a comma-separated list of whole days like 1,7,30") from None
    if any(d < spec["min"] or d > spec["max"] for d in days):
        raise SettingsError(f"{env}={raw!r} is out of range: every window must be {spec['min']} to {spec['max']} days")
    missing = [d for d in spec.get("required", []) if d not in days]
    if missing:
        raise SettingsError(f"{env}={raw!r} lacks {', '.join(map(str, missing))}: {spec['why_required']}")
    return days


def _check_paths(cfg: Settings) -> None:
    """The warehouse, the serving file, the model folder and Spark's folder must be different places."""
    places = {"PROPENSITY_WAREHOUSE": cfg.warehouse_path, "PROPENSITY_SERVING": cfg.serving_path,
              "PROPENSITY_MODELS_DIR": cfg.models_dir, "PROPENSITY_SPARK_DIR": cfg.spark_dir}  # fmt: skip
    for a, path_a in places.items():
        for b, path_b in places.items():
            if a < b and (path_a == path_b or path_a in path_b.parents or path_b in path_a.parents):
                raise SettingsError(
                    f"{a}={path_a} and {b}={path_b} overlap: the job would overwrite one with the other; "
                    "point them at different places"
                )


def settings() -> Settings:
    """Settings read from the environment now (not at import), so tests can point stages elsewhere."""
    values = {}
    for f in fields(Settings):
        spec = SPEC[f.name]
        values[f.name] = _value(f.name, spec, os.environ.get(spec["env"], spec["default"]))
    if not values["threads"]:
        values["threads"] = os.cpu_count() or 2
    cfg = Settings(**values)
    if cfg.drift_warn_psi > cfg.drift_fail_psi:
        raise SettingsError(
            f"PROPENSITY_DRIFT_WARN_PSI={cfg.drift_warn_psi} is above PROPENSITY_DRIFT_FAIL_PSI={cfg.drift_fail_psi}"
        )
    _check_paths(cfg)
    return cfg


def describe() -> list[tuple[str, str, str, str]]:
    """(variable, value in force, default, meaning) of every setting, for `propensity settings`."""
    cfg = settings()
    return [
        (s["env"], _shown(getattr(cfg, name)), _shown(_value(name, s, s["default"])), s["help"])
        for name, s in SPEC.items()
    ]


def _shown(value: object) -> str:
    return ",".join(map(_shown, value)) if isinstance(value, tuple) else getattr(value, "isoformat", value.__str__)()


def folder_env(root: Path) -> dict[str, str]:
    """The variables that put every file of the job (data, warehouse, serving, models, reports) under ``root``."""
    return {
        "PROPENSITY_DATA_DIR": str(root / "data"),
        "PROPENSITY_WAREHOUSE": str(root / "warehouse" / "propensity.duckdb"),
        "PROPENSITY_SERVING": str(root / "warehouse" / "serving.duckdb"),
        "PROPENSITY_SPARK_DIR": str(root / "warehouse" / "spark"),
        "PROPENSITY_MODELS_DIR": str(root / "artifacts"),
        "PROPENSITY_REPORTS_DIR": str(root / "reports"),
    }
