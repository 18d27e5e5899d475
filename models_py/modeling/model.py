"""What scoring needs of a model, whatever stored it: its features, booster, calibration and decision threshold."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import xgboost as xgb

from models_py.modeling import repeat_purchase
from models_py.modeling.calibration import Calibration


class Predictor(Protocol):
    @property
    def features(self) -> list[str]: ...
    @property
    def booster(self) -> xgb.Booster: ...
    @property
    def calibration(self) -> Calibration: ...


class ScoringModel(Predictor, Protocol):
    @property
    def version(self) -> str: ...
    @property
    def threshold(self) -> float: ...


def probabilities(model: Predictor, x: np.ndarray, threads: int) -> np.ndarray:
    """Calibrated probabilities for the rows of a float32 matrix of the model's mart columns, in its feature order
    (a derived feature, BG/NBD's probability, is computed here from them)."""
    x = repeat_purchase.complete(model, x)
    margin = repeat_purchase.offset(getattr(model, "repeat_purchase", None), model.features, x)
    raw = model.booster.predict(xgb.DMatrix(x, base_margin=margin, feature_names=model.features, nthread=threads))
    return model.calibration.apply(raw)
