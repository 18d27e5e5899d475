"""Scores turned into probabilities, stored as plain numbers (no pickle).

The product's model is calibrated by Platt scaling in log-odds: its raw XGBoost probabilities are nearly right
already (no class reweighting; the non-buyer sample is weighted back to its share), two parameters correct their level
and spread, and, being strictly increasing, they keep the model's full ranking. Isotonic steps, used before, tied
thousands of visitors into one value and cost PR AUC. Scores that are not probabilities at all (the recency and
cart heuristics) keep isotonic regression.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

# float32 probabilities from XGBoost reach neither 0 nor 1 in practice; the clip only keeps the log finite.
_EDGE = 1e-7


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EDGE, 1 - _EDGE)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class LogOddsCalibration:
    """p = sigmoid(slope * logit(raw) + intercept)."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray) -> LogOddsCalibration:
        if np.unique(labels).size < 2:
            raise ValueError("calibration needs both buyers and non-buyers among its rows")
        model = LogisticRegression(C=np.inf).fit(_log_odds(raw)[:, None], labels)
        slope = float(model.coef_[0, 0])
        if slope <= 0:
            raise ValueError(
                f"the scores do not rank buyers above non-buyers on the calibration rows (log-odds slope {slope:.3g})"
            )
        return cls(slope=slope, intercept=float(model.intercept_[0]))

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * _log_odds(raw) + self.intercept)))


@dataclass(frozen=True)
class IsotonicCalibration:
    """Any score -> probability by a monotone step function, interpolated between its thresholds."""

    x: list[float]
    y: list[float]

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray) -> IsotonicCalibration:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, labels)
        return cls(x=[float(v) for v in iso.X_thresholds_], y=[float(v) for v in iso.y_thresholds_])

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)


Calibration = LogOddsCalibration | IsotonicCalibration


def to_dict(calibration: Calibration) -> dict:
    return asdict(calibration)


def from_dict(stored: dict) -> Calibration:
    """A model's stored calibration; models trained before the switch to log-odds carry isotonic thresholds."""
    for kind in (LogOddsCalibration, IsotonicCalibration):
        if set(stored) == set(kind.__dataclass_fields__):
            return kind(**stored)
    raise ValueError(f"unknown calibration with fields {sorted(stored)}")
