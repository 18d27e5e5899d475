"""Train the propensity model on earlier cut-offs; stop early, calibrate and pick the threshold on a later one."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import xgboost as xgb

from models_py import calibration as calibrate
from models_py import evaluate, registry
from models_py.config import Settings
from models_py.features import FEATURES_TABLE, hash_unit, labelled, labelled_dates, negatives, product_features

PARAMS = {
    "objective": "binary:logistic",  # unweighted log loss: scores stay close to probabilities
    "eval_metric": "logloss",
    "tree_method": "hist",
    "learning_rate": 0.05,
    "max_depth": 5,
    "min_child_weight": 5,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "seed": 0,
}
MAX_ROUNDS = 1500
EARLY_STOPPING_ROUNDS = 50
NEGATIVE_KEEP_RATE = 0.25  # negatives are >99.9% of rows: keep a quarter, weight them 4x (expected loss unchanged)


def negative_keep_rate(negatives: int, max_negatives: int) -> float:
    """A quarter of the non-buyers, or fewer when that would exceed ``max_negatives`` rows."""
    return min(NEGATIVE_KEEP_RATE, max_negatives / negatives) if negatives else NEGATIVE_KEEP_RATE


class TrainingError(RuntimeError):
    """Not enough labelled history to train honestly."""


def split_dates(dates: list[date], training_cutoffs: int) -> tuple[list[date], date]:
    """The latest labelled cut-off validates; the ones before it train. Nothing later than it is touched."""
    if len(dates) < 2:
        raise TrainingError(
            f"need at least 2 cut-offs with complete labels to train and validate, found {len(dates)}: "
            "land more days of events (the spine is weekly) or lower PROPENSITY_TRAINING_CUTOFFS"
        )
    return dates[-1 - training_cutoffs : -1], dates[-1]


def fit(
    con: duckdb.DuckDBPyConnection,
    train_dates: list[date],
    validation_date: date,
    features: list[str],
    params: dict,
    threads: int,
    max_negatives: int,
    source: str = FEATURES_TABLE,
) -> tuple[xgb.Booster, calibrate.Calibration, float, dict]:
    keep = negative_keep_rate(negatives(con, train_dates), max_negatives)
    tr = labelled(con, train_dates, features, negative_keep_rate=keep, source=source)
    weight = np.where(tr.y == 1, 1.0, 1.0 / keep).astype(np.float32)
    dtrain = xgb.DMatrix(tr.x, label=tr.y, weight=weight, feature_names=features, nthread=threads)
    training_rows = tr.y.size
    del tr  # the DMatrix holds its own copy; a large shop needs the memory for the validation rows
    # Validation visitors are split in two: one half stops the boosting, the other calibrates and picks the
    # threshold, so neither choice is scored on the rows that made it.
    va = labelled(con, [validation_date], features, source=source)
    stop_half = hash_unit(va.visitor_id, 17) < 0.5
    dstop = xgb.DMatrix(va.x[stop_half], label=va.y[stop_half], feature_names=features, nthread=threads)
    booster = xgb.train(
        {**params, "nthread": threads},
        dtrain,
        num_boost_round=MAX_ROUNDS,
        evals=[(dstop, "validation")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
    )
    booster = booster[: booster.best_iteration + 1]
    dcal = xgb.DMatrix(va.x[~stop_half], feature_names=features, nthread=threads)
    raw = booster.predict(dcal)
    try:
        calibration = calibrate.LogOddsCalibration.fit(raw, va.y[~stop_half])
    except ValueError as exc:
        raise TrainingError(f"cannot calibrate on the validation cut-off {validation_date}: {exc}") from exc
    p = calibration.apply(raw)
    threshold = evaluate.best_f1_threshold(va.y[~stop_half], p)
    metrics = evaluate.metrics(va.y[~stop_half], p, threshold)
    metrics["training_rows"] = float(training_rows)
    metrics["negative_keep_rate"] = keep
    return booster, calibration, threshold, metrics


def train(
    con: duckdb.DuckDBPyConnection, as_of: date, cfg: Settings, progress: Callable[[str], None] | None = None
) -> tuple[Path, registry.ModelMetadata]:
    features = product_features(con)
    train_dates, validation_date = split_dates(labelled_dates(con, as_of, cfg.horizon_days), cfg.training_cutoffs)
    if progress:
        progress(
            f"training on {len(train_dates)} cut-offs {train_dates[0]}..{train_dates[-1]}, "
            f"validating on {validation_date}, {len(features)} features"
        )
    booster, calibration, threshold, metrics = fit(
        con, train_dates, validation_date, features, PARAMS, cfg.threads, cfg.max_training_negatives
    )
    raw_model = booster.save_raw("json")
    version = f"{as_of:%Y%m%d}-{hashlib.sha256(bytes(raw_model)).hexdigest()[:10]}"
    meta = registry.ModelMetadata(
        version=version,
        trained_at=datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        as_of_date=as_of.isoformat(),
        training_as_of_dates=[d.isoformat() for d in train_dates],
        validation_as_of_date=validation_date.isoformat(),
        features=features,
        feature_hash=registry.feature_hash(features),
        params=PARAMS,
        best_iteration=int(booster.num_boosted_rounds()),
        threshold=threshold,
        calibration=calibrate.to_dict(calibration),
        metrics=metrics,
    )
    folder = registry.save(cfg.models_dir, booster, meta)
    registry.register(con, folder, meta)
    if progress:
        progress(
            f"model {version}: {meta.best_iteration} trees, validation ROC AUC {metrics['roc_auc']:.3f}, "
            f"PR AUC {metrics['pr_auc']:.4f}, ECE {metrics['ece']:.5f}"
        )
    return folder, meta


def validation_auc(con: duckdb.DuckDBPyConnection, model: registry.LoadedModel, as_of: date, threads: int) -> float:
    """A model's ROC AUC on the calibration half of a cut-off (the half no model's early stopping saw)."""
    va = labelled(con, [as_of], model.meta.features)
    half = hash_unit(va.visitor_id, 17) >= 0.5
    dm = xgb.DMatrix(va.x[half], feature_names=model.meta.features, nthread=threads)
    return evaluate.metrics(va.y[half], model.calibration.apply(model.booster.predict(dm)), 0.5)["roc_auc"]


def promote_if_better(
    con: duckdb.DuckDBPyConnection, meta: registry.ModelMetadata, cfg: Settings, say: Callable[[str], None]
) -> bool:
    """The challenger replaces the champion only if it beats it by the margin on the same latest cut-off."""
    current = registry.load_champion(con)
    if current is None:
        registry.set_champion(con, meta.version)
        say(f"  no champion yet: {meta.version} promoted")
        return True
    if current.meta.version == meta.version:
        say(f"  retrained model is identical to the champion {meta.version}: nothing to promote")
        return False
    validation = date.fromisoformat(meta.validation_as_of_date)
    challenger = registry.load(cfg.models_dir / meta.version, meta.artifact_sha256)
    champ_auc = validation_auc(con, current, validation, cfg.threads)
    chall_auc = validation_auc(con, challenger, validation, cfg.threads)
    better = chall_auc >= champ_auc + cfg.promotion_margin
    say(
        f"  on {validation}: challenger {meta.version} ROC AUC {chall_auc:.4f} vs champion "
        f"{current.meta.version} {champ_auc:.4f} (margin {cfg.promotion_margin}): "
        + ("promoted" if better else "champion kept")
    )
    if better:
        registry.set_champion(con, meta.version)
    return better
