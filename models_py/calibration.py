"""Isotonic calibration stored as plain numbers (no pickle): raw score -> probability by interpolation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class Calibration:
    x: list[float]
    y: list[float]

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray) -> Calibration:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, labels)
        return cls(x=[float(v) for v in iso.X_thresholds_], y=[float(v) for v in iso.y_thresholds_])

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)
