"""Model artifacts (XGBoost JSON + metadata, no pickle) and the registry table that says which one scores."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import xgboost as xgb

from models_py.config import Settings
from models_py.errors import JobFailed
from models_py.modeling import calibration as calibrate
from models_py.modeling.train import PARAMS, TrainedModel
from models_py.shop_calendar import utc_now_naive

CHAMPION_POINTER = "champion.json"


class ArtifactError(JobFailed):
    """A model artifact that is missing or whose bytes are not the ones registered."""


@dataclass
class ModelMetadata:
    version: str
    trained_at: str
    as_of_date: str
    training_as_of_dates: list[str]
    validation_as_of_date: str
    features: list[str]
    feature_hash: str
    params: dict
    best_iteration: int
    threshold: float
    calibration: dict
    metrics: dict
    artifact_sha256: str = ""
    extra: dict = field(default_factory=dict)
    population_profile: dict = field(default_factory=dict)  # absent in models saved before drift profiles


class LoadedModel:
    """A stored model whose artifact verified, ready to score (what ``modeling.model.ScoringModel`` asks for)."""

    def __init__(self, meta: ModelMetadata, booster: xgb.Booster, calibration: calibrate.Calibration):
        self.meta, self.booster, self.calibration = meta, booster, calibration
        self.version, self.features, self.threshold = meta.version, meta.features, meta.threshold


def feature_hash(features: list[str]) -> str:
    return hashlib.sha256(",".join(features).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store(con: duckdb.DuckDBPyConnection, cfg: Settings, trained: TrainedModel, as_of: date) -> ModelMetadata:
    """Save a trained model under a version named by its date and content, and register it as a challenger."""
    raw_model = trained.booster.save_raw("json")
    version = f"{as_of:%Y%m%d}-{hashlib.sha256(bytes(raw_model)).hexdigest()[:10]}"
    meta = ModelMetadata(
        version=version,
        trained_at=utc_now_naive().isoformat(timespec="seconds"),
        as_of_date=as_of.isoformat(),
        training_as_of_dates=[d.isoformat() for d in trained.training_as_of_dates],
        validation_as_of_date=trained.validation_as_of_date.isoformat(),
        features=trained.features,
        feature_hash=feature_hash(trained.features),
        params=PARAMS,
        best_iteration=int(trained.booster.num_boosted_rounds()),
        threshold=trained.threshold,
        calibration=calibrate.to_dict(trained.calibration),
        metrics=trained.metrics,
        population_profile=trained.population_profile,
    )
    folder = save(cfg.models_dir, trained.booster, meta)
    register(con, folder, meta)
    return meta


def save(models_dir: Path, booster: xgb.Booster, meta: ModelMetadata) -> Path:
    folder = models_dir / meta.version
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "model.json"
    booster.save_model(model_path)
    meta.artifact_sha256 = file_sha256(model_path)
    (folder / "metadata.json").write_text(json.dumps(asdict(meta), indent=2, default=str) + "\n")
    return folder


def load(folder: Path, expected_sha256: str | None = None) -> LoadedModel:
    model_path, meta_path = folder / "model.json", folder / "metadata.json"
    if not model_path.is_file() or not meta_path.is_file():
        raise ArtifactError(f"model artifact missing in {folder}")
    meta = ModelMetadata(**json.loads(meta_path.read_text()))
    actual = file_sha256(model_path)
    for expected in filter(None, (expected_sha256, meta.artifact_sha256)):
        if actual != expected:
            raise ArtifactError(
                f"refusing model {meta.version}: {model_path} has sha256 {actual[:16]}..., "
                f"registered {expected[:16]}... (the file was changed or corrupted)"
            )
    try:
        calibration = calibrate.from_dict(meta.calibration)
    except ValueError as exc:
        raise ArtifactError(f"refusing model {meta.version}: {meta_path}: {exc}") from exc
    booster = xgb.Booster()
    booster.load_model(model_path)
    return LoadedModel(meta=meta, booster=booster, calibration=calibration)


def register(con: duckdb.DuckDBPyConnection, folder: Path, meta: ModelMetadata, status: str = "challenger") -> None:
    if con.execute("select 1 from ml.model_registry where model_version = ?", [meta.version]).fetchone():
        return  # the same bytes were trained before (the version is their hash): keep its status
    con.execute(
        """insert into ml.model_registry values
           (?, ?::timestamp, ?::date, ?::date, ?::date, ?::date, ?, ?, ?, ?, ?, ?, now())""",
        [meta.version, meta.trained_at, meta.as_of_date, min(meta.training_as_of_dates),
         max(meta.training_as_of_dates), meta.validation_as_of_date, ",".join(meta.features), meta.feature_hash,
         str(folder), meta.artifact_sha256, json.dumps(meta.metrics), status],
    )  # fmt: skip
    # The same metrics one per row, so training runs can be compared with plain SQL.
    con.execute("delete from ml.model_metrics where model_version = ?", [meta.version])
    con.executemany(
        "insert into ml.model_metrics values (?, ?::date, 'validation calibration half', ?, ?)",
        [[meta.version, meta.validation_as_of_date, k, float(v)] for k, v in meta.metrics.items()],
    )


def champion(con: duckdb.DuckDBPyConnection) -> tuple[str, Path, str] | None:
    try:  # read-only readers (the report) must not have to create the registry
        row = con.execute(
            "select model_version, artifact_path, artifact_sha256 from ml.model_registry where status = 'champion'"
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return (row[0], Path(row[1]), row[2]) if row else None


def load_champion(con: duckdb.DuckDBPyConnection) -> LoadedModel | None:
    found = champion(con)
    if not found:
        return None
    _, folder, sha = found
    return load(folder, sha)


def set_champion(con: duckdb.DuckDBPyConnection, version: str) -> None:
    """Make ``version`` the champion (its artifact must verify); the old champion is retired."""
    row = con.execute(
        "select artifact_path, artifact_sha256 from ml.model_registry where model_version = ?", [version]
    ).fetchone()
    if not row:
        raise ArtifactError(f"no model {version} in the registry")
    folder = Path(row[0])
    load(folder, row[1])  # refuses a tampered artifact
    con.execute(
        "update ml.model_registry set status = 'retired', status_changed_at = now() "
        "where status = 'champion' and model_version <> ?",
        [version],
    )
    con.execute(
        "update ml.model_registry set status = 'champion', status_changed_at = now() where model_version = ?",
        [version],
    )
    # A pointer beside the artifacts, so on-demand scoring never has to open (and lock) the warehouse.
    pointer = folder.parent / CHAMPION_POINTER
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(json.dumps({"model_version": version, "artifact_sha256": row[1]}) + "\n")
    tmp.replace(pointer)


def load_pointed_champion(models_dir: Path) -> LoadedModel | None:
    """The champion as named by its pointer file (verified against its registered hash)."""
    pointer = models_dir / CHAMPION_POINTER
    if not pointer.is_file():
        return None
    named = json.loads(pointer.read_text())
    return load(models_dir / named["model_version"], named["artifact_sha256"])


def previous_champion(con: duckdb.DuckDBPyConnection) -> str | None:
    """The most recently retired model: what `propensity rollback` goes back to."""
    row = con.execute(
        "select model_version from ml.model_registry where status = 'retired' order by status_changed_at desc limit 1"
    ).fetchone()
    return row[0] if row else None


def retrain_due(con: duckdb.DuckDBPyConnection, as_of: date, cfg: Settings) -> bool:
    """No model yet, or the newest was trained at least PROPENSITY_RETRAIN_EVERY_DAYS before ``as_of``."""
    row = con.execute("select max(as_of_date) from ml.model_registry").fetchone()
    return row[0] is None or (as_of - row[0]).days >= cfg.retrain_every_days
