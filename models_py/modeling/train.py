"""Train the propensity model on earlier cut-offs; stop early, calibrate and pick the threshold on a later one."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import xgboost as xgb

from models_py.config import Settings
from models_py.errors import JobFailed
from models_py.modeling import calibration as calibrate
from models_py.modeling import evaluate, population, repeat_purchase
from models_py.modeling.dataset import (
    FEATURES_TABLE,
    SEED_FEATURES,
    VISITOR_SALT,
    hash_unit,
    labelled,
    labelled_dates,
    negatives,
    product_features,
    validation_share,
)

PARAMS = {
    # Log loss on every buyer and a sample of non-buyers weighted back to their share: the expected loss is the
    # unsampled one, so raw scores stay close to probabilities (no scale_pos_weight).
    "objective": "binary:logistic",
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
STOPPING, CALIBRATION, HELD_OUT = 0, 1, 2  # the roles of the validation cut-off's visitors


class TrainingError(JobFailed):
    """Not enough labelled history to train honestly."""


@dataclass
class Companion:
    """The same training on the original project's 14 features only: what on-demand scoring of the original API's
    payload uses (a model that never saw its other features missing would score such a payload badly)."""

    booster: xgb.Booster
    calibration: calibrate.Calibration
    threshold: float
    metrics: dict[str, float]
    features: list[str]


@dataclass
class TrainedModel:
    """A fitted, calibrated model with the cut-offs it learned from and its validation numbers."""

    booster: xgb.Booster
    calibration: calibrate.Calibration
    threshold: float
    features: list[str]
    training_as_of_dates: list[date]
    validation_as_of_date: date
    metrics: dict[str, float]
    population_profile: dict[str, dict]  # the validation population, what drift is measured against
    companion: Companion | None = None
    repeat_purchase: repeat_purchase.RepeatPurchase | None = None  # BG/NBD behind the last feature


def negative_keep_rate(negatives: int, max_negatives: int) -> float:
    """A quarter of the non-buyers, or fewer when that would exceed ``max_negatives`` rows."""
    return min(NEGATIVE_KEEP_RATE, max_negatives / negatives) if negatives else NEGATIVE_KEEP_RATE


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
    cfg: Settings,
    source: str = FEATURES_TABLE,
    companion_features: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainedModel:
    keep = negative_keep_rate(negatives(con, train_dates), cfg.max_training_negatives)
    bg = None
    if set(repeat_purchase.INPUTS) <= set(features) and repeat_purchase.is_order_log(con, train_dates[-1], source):
        bg = repeat_purchase.fit_at(con, train_dates[-1], cfg.horizon_days, source)
    tr = labelled(con, train_dates, features, negative_keep_rate=keep, source=source)
    tr = repeat_purchase.extended(tr, bg) if bg else tr
    model_features = tr.features
    weight = np.where(tr.y == 1, 1.0, 1.0 / keep).astype(np.float32)
    bg = repeat_purchase.scaled(bg, tr, weight) if bg else None
    columns = [features.index(f) for f in companion_features or []]
    # Quantised at once: the same trees as from a DMatrix (checked at scale 1), without a second copy of the rows.
    dtrain = xgb.QuantileDMatrix(tr.x, label=tr.y, weight=weight,
                                 base_margin=repeat_purchase.offset(bg, model_features, tr.x),
                                 feature_names=model_features, nthread=cfg.threads)  # fmt: skip
    dtrain_companion = (
        xgb.QuantileDMatrix(tr.x[:, columns], label=tr.y, weight=weight, feature_names=companion_features,
                            nthread=cfg.threads)
        if columns else None
    )  # fmt: skip
    training_rows = tr.y.size
    del tr  # the quantised matrices are all boosting needs; a large shop needs the memory for the validation rows
    share = validation_share(con, validation_date, cfg.max_validation_rows)
    va = labelled(con, [validation_date], features, source=source, visitor_share=share)
    va = repeat_purchase.extended(va, bg) if bg else va
    roles = validation_roles(va.visitor_id, share)
    booster, calibration, threshold, metrics = _boost_and_calibrate(
        dtrain, va.x, va.y, roles, model_features, cfg, validation_date, progress, prior=bg
    )
    metrics["training_rows"] = float(training_rows)
    metrics["negative_keep_rate"] = keep
    metrics["validation_share"] = share
    companion = None
    if dtrain_companion is not None:
        companion = Companion(
            *_boost_and_calibrate(dtrain_companion, va.x[:, columns], va.y, roles, companion_features, cfg,
                                  validation_date, progress),
            features=list(companion_features),
        )  # fmt: skip
    return TrainedModel(
        booster, calibration, threshold, list(model_features), list(train_dates), validation_date, metrics,
        population.profile(va.x, list(model_features)), companion, bg,
    )  # fmt: skip


def validation_roles(visitor_id: np.ndarray, share: float = 1.0) -> np.ndarray:
    """Each validation visitor's one role, fixed by its id: half stop the boosting; of the other half, one half fits
    the calibration and picks the threshold, and the rest (a quarter) measure the model, having done neither. One
    hash cuts all three and the sample of a larger shop's visitors (``share``, see ``labelled``): two salted hashes
    of the same id are correlated."""
    u = hash_unit(visitor_id, VISITOR_SALT) / share
    return np.select([u < 0.5, u < 0.75], [STOPPING, CALIBRATION], HELD_OUT)


class _Progress(xgb.callback.TrainingCallback):
    """A line every few hundred rounds: training a large shop takes minutes and should not look hung."""

    def __init__(self, say: Callable[[str], None], n_features: int, every: int = 200) -> None:
        self.say, self.n_features, self.every, self.started = say, n_features, every, time.monotonic()

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        if epoch and epoch % self.every == 0:
            loss = evals_log["validation"]["logloss"][-1]
            self.say(f"  {self.n_features} features: {epoch} trees, stopping-rows log loss {loss:.5f}, "
                     f"{time.monotonic() - self.started:.0f} s")  # fmt: skip
        return False


def _boost_and_calibrate(
    dtrain, va_x, va_y, roles, features: list[str], cfg: Settings, validation_date: date, progress=None, prior=None
):
    """Boost with early stopping on the stopping rows; calibrate and pick the threshold on the calibration rows;
    measure on the held-out rows. Returns (booster, calibration, threshold, held-out metrics)."""

    def matrix(role: int, label: bool = False) -> xgb.DMatrix:
        rows = roles == role
        margin = repeat_purchase.offset(prior, features, va_x[rows])
        return xgb.DMatrix(va_x[rows], label=va_y[rows] if label else None, base_margin=margin,
                           feature_names=features, nthread=cfg.threads)  # fmt: skip

    booster = xgb.train(
        {**PARAMS, "nthread": cfg.threads},
        dtrain,
        num_boost_round=MAX_ROUNDS,
        evals=[(matrix(STOPPING, label=True), "validation")],
        early_stopping_rounds=EARLY_STOPPING_ROUNDS,
        verbose_eval=False,
        callbacks=[_Progress(progress, len(features))] if progress else None,
    )
    booster = booster[: booster.best_iteration + 1]
    y_cal, raw_cal = va_y[roles == CALIBRATION], booster.predict(matrix(CALIBRATION))
    try:
        calibration = calibrate.LogOddsCalibration.fit(raw_cal, y_cal)
    except ValueError as exc:
        raise TrainingError(f"cannot calibrate on the validation cut-off {validation_date}: {exc}") from exc
    threshold = evaluate.best_f1_threshold(y_cal, calibration.apply(raw_cal))
    held_out = calibration.apply(booster.predict(matrix(HELD_OUT)))
    metrics = evaluate.metrics(va_y[roles == HELD_OUT], held_out, threshold)
    metrics["held_out_rows"] = float(held_out.size)
    return booster, calibration, threshold, metrics


def train(
    con: duckdb.DuckDBPyConnection, as_of: date, cfg: Settings, progress: Callable[[str], None] | None = None
) -> TrainedModel:
    """The product's model with labels complete before ``as_of``: the latest labelled cut-off validates."""
    features = product_features(con)
    train_dates, validation_date = split_dates(labelled_dates(con, as_of, cfg), cfg.training_cutoffs)
    if progress:
        progress(
            f"training on {len(train_dates)} cut-offs {train_dates[0]}..{train_dates[-1]}, "
            f"validating on {validation_date}, {len(features)} features"
        )
    return fit(con, train_dates, validation_date, features, cfg, companion_features=list(SEED_FEATURES),
               progress=progress)  # fmt: skip
