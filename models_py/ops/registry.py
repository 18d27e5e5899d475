"""Model artifacts (XGBoost JSON + metadata, no pickle) and the registry table that says which one scores."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import xgboost as xgb

from models_py.config import Settings
from models_py.errors import JobFailed
from models_py.modeling import calibration as calibrate
from models_py.modeling.repeat_purchase import RepeatPurchase
from models_py.modeling.train import PARAMS, Companion, TrainedModel
from models_py.shop_calendar import utc_now_naive

CHAMPION_POINTER = "champion.json"
VERSION = re.compile(r"\d{8}-[0-9a-f]{10}")  # the as-of date and the start of the model's own hash
FEATURE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")  # a feature name goes into SQL as a column name


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


COMPANION_FILE = "seed_model.json"


class CompanionModel:
    """The champion's twin on the original 14 features (``modeling.model.Predictor``), for on-demand scoring."""

    def __init__(self, booster: xgb.Booster, calibration: calibrate.Calibration, features: list[str]):
        self.booster, self.calibration, self.features = booster, calibration, features


class LoadedModel:
    """A stored model whose artifact verified, ready to score (what ``modeling.model.ScoringModel`` asks for)."""

    def __init__(self, meta: ModelMetadata, booster: xgb.Booster, calibration: calibrate.Calibration,
                 companion: CompanionModel | None = None, repeat_purchase: RepeatPurchase | None = None):  # fmt: skip
        self.meta, self.booster, self.calibration, self.companion = meta, booster, calibration, companion
        self.version, self.features, self.threshold = meta.version, meta.features, meta.threshold
        self.repeat_purchase = repeat_purchase


def feature_hash(features: list[str]) -> str:
    return hashlib.sha256(",".join(features).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_sha256(folder: Path) -> str:
    """One hash over everything a model is: the trees and the metadata (features, calibration, threshold)."""
    digest = hashlib.sha256()
    for name in ("model.json", "metadata.json", COMPANION_FILE):
        if name == COMPANION_FILE and not (folder / name).is_file():
            continue  # models stored before the companion
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return digest.hexdigest()


def scoring_sha256(trained: TrainedModel) -> str:
    """What a version names: everything that turns features into a published probability and a decision (the trees,
    the calibration, the threshold, BG/NBD behind its derived feature; the companion's too). The same trees
    calibrated differently are another model."""
    digest = hashlib.sha256(bytes(trained.booster.save_raw("json")))
    parts = [calibrate.to_dict(trained.calibration), trained.threshold]
    if trained.repeat_purchase is not None:
        parts.append(trained.repeat_purchase.to_dict())
    if trained.companion is not None:
        digest.update(bytes(trained.companion.booster.save_raw("json")))
        parts += [calibrate.to_dict(trained.companion.calibration), trained.companion.threshold]
    digest.update(json.dumps(parts, sort_keys=True).encode())
    return digest.hexdigest()


def model_folder(models_dir: Path, version: str) -> Path:
    """The folder of a model version; a version that is not one (a path, ``..``) is refused."""
    if not isinstance(version, str) or not VERSION.fullmatch(version):
        raise ArtifactError(f"{version!r} is not a model version (YYYYMMDD-<10 hex digits>)")
    return models_dir / version


def store(con: duckdb.DuckDBPyConnection, cfg: Settings, trained: TrainedModel, as_of: date) -> ModelMetadata:
    """Save a trained model under a version named by its date and content, and register it as a challenger."""
    version = f"{as_of:%Y%m%d}-{scoring_sha256(trained)[:10]}"
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
        extra={"repeat_purchase": trained.repeat_purchase.to_dict()} if trained.repeat_purchase else {},
    )
    if con.execute("select 1 from ml.model_registry where model_version = ?", [version]).fetchone():
        return load_version(con, version).meta  # the same trees were stored before (a rerun): keep that folder
    folder = save(cfg.models_dir, trained.booster, meta, trained.companion)
    register(con, folder, meta, folder_sha256(folder))
    return meta


def save(models_dir: Path, booster: xgb.Booster, meta: ModelMetadata, companion: Companion | None = None) -> Path:
    folder = models_dir / meta.version
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "model.json"
    booster.save_model(model_path)
    meta.artifact_sha256 = file_sha256(model_path)
    if companion is not None:
        companion.booster.save_model(folder / COMPANION_FILE)
        meta.extra["seed_companion"] = {
            "features": companion.features,
            "calibration": calibrate.to_dict(companion.calibration),
            "threshold": companion.threshold,
            "metrics": companion.metrics,
        }
    (folder / "metadata.json").write_text(json.dumps(asdict(meta), indent=2, default=str) + "\n")
    return folder


def _companion(folder: Path, meta: ModelMetadata) -> CompanionModel | None:
    spec = meta.extra.get("seed_companion")
    if not spec or not (folder / COMPANION_FILE).is_file():
        return None
    booster = xgb.Booster()
    booster.load_model(folder / COMPANION_FILE)
    return CompanionModel(booster, calibrate.from_dict(spec["calibration"]), list(spec["features"]))


def load(folder: Path, expected_sha256: str | None = None) -> LoadedModel:
    """A stored model, verified: against ``expected_sha256`` (the registry's hash of the whole folder) when given,
    else its trees against the hash its metadata records."""
    model_path, meta_path = folder / "model.json", folder / "metadata.json"
    if not model_path.is_file() or not meta_path.is_file():
        raise ArtifactError(f"model artifact missing in {folder}")
    if expected_sha256 and folder_sha256(folder) != expected_sha256:
        raise ArtifactError(
            f"refusing model {folder.name}: {folder} (model.json and metadata.json) has sha256 "
            f"{folder_sha256(folder)[:16]}..., registered {expected_sha256[:16]}... (changed or corrupted)"
        )
    try:
        meta = ModelMetadata(**json.loads(meta_path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"refusing model {folder.name}: {meta_path} is not model metadata: {exc}") from exc
    if not expected_sha256 and file_sha256(model_path) != meta.artifact_sha256:
        raise ArtifactError(f"refusing model {meta.version}: {model_path} is not the file its metadata records")
    bad = [f for f in meta.features if not isinstance(f, str) or not FEATURE_NAME.fullmatch(f)]
    if bad:
        raise ArtifactError(f"refusing model {meta.version}: {meta_path} names features that are not column names: "
                            + ", ".join(map(repr, bad[:5])))  # fmt: skip
    if not 0.0 < float(meta.threshold) < 1.0:
        raise ArtifactError(f"refusing model {meta.version}: {meta_path}: threshold {meta.threshold} outside (0, 1)")
    try:
        calibration = calibrate.from_dict(meta.calibration)
        companion = _companion(folder, meta)
        spec = meta.extra.get("repeat_purchase")
        bg = RepeatPurchase.from_dict(spec) if spec else None
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"refusing model {meta.version}: {meta_path}: {exc}") from exc
    booster = xgb.Booster()
    booster.load_model(model_path)
    return LoadedModel(meta, booster, calibration, companion, bg)


def register(
    con: duckdb.DuckDBPyConnection, folder: Path, meta: ModelMetadata, sha256: str, status: str = "challenger"
) -> None:
    if con.execute("select 1 from ml.model_registry where model_version = ?", [meta.version]).fetchone():
        return  # the same bytes were trained before (the version is their hash): keep its status
    con.execute(
        """insert into ml.model_registry values
           (?, ?::timestamp, ?::date, ?::date, ?::date, ?::date, ?, ?, ?, ?, ?, ?, now())""",
        [meta.version, meta.trained_at, meta.as_of_date, min(meta.training_as_of_dates),
         max(meta.training_as_of_dates), meta.validation_as_of_date, ",".join(meta.features), meta.feature_hash,
         str(folder), sha256, json.dumps(meta.metrics), status],
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
    version, folder, sha = found
    return load_registered(con, version, folder, sha)


def load_registered(con: duckdb.DuckDBPyConnection, version: str, folder: Path, sha: str) -> LoadedModel:
    """A registered model, verified by its folder hash. A registry written before the folder hash kept the hash of
    model.json alone: such a row is moved to the folder hash once, when its trees still match."""
    if (folder / "model.json").is_file() and sha == file_sha256(folder / "model.json"):
        sha = folder_sha256(folder)
        if not con.execute("select current_setting('access_mode')").fetchone()[0] == "read_only":
            con.execute("update ml.model_registry set artifact_sha256 = ? where model_version = ?", [sha, version])
    return load(folder, sha)


def _registered_row(con: duckdb.DuckDBPyConnection, version: str) -> tuple[str, str]:
    row = con.execute(
        "select artifact_path, artifact_sha256 from ml.model_registry where model_version = ?", [version]
    ).fetchone()
    if not row:
        raise ArtifactError(f"no model {version} in the registry")
    return row


def load_version(con: duckdb.DuckDBPyConnection, version: str) -> LoadedModel:
    path, sha = _registered_row(con, version)
    return load_registered(con, version, Path(path), sha)


def set_champion(con: duckdb.DuckDBPyConnection, version: str) -> None:
    """Make ``version`` the champion (its artifact must verify); the old champion is retired."""
    load_version(con, version)  # refuses a tampered artifact
    folder = Path(_registered_row(con, version)[0])
    sha = folder_sha256(folder)
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
    tmp.write_text(json.dumps({"model_version": version, "folder_sha256": sha}) + "\n")
    tmp.replace(pointer)


def load_pointed_champion(models_dir: Path, registered_sha256: str | None = None) -> LoadedModel | None:
    """The champion as named by its pointer file, verified against the registry's hash when the caller could read
    it (``registered_sha256``), else against the pointer's."""
    pointer = models_dir / CHAMPION_POINTER
    if not pointer.is_file():
        return None
    try:
        named = json.loads(pointer.read_text())
        version, sha = named["model_version"], named.get("folder_sha256")
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{pointer} is not a champion pointer: {exc}") from exc
    if not sha:
        raise ArtifactError(f"{pointer} was written before folder hashes: run `propensity promote {version}` once")
    return load(model_folder(models_dir, version), registered_sha256 or sha)
