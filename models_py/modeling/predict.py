"""On-demand scoring of the seed's JSON payload, with the same model and calibration as the nightly job."""

from __future__ import annotations

import json
import math

import numpy as np

from models_py.errors import BadInputError
from models_py.modeling.dataset import SEED_FEATURES
from models_py.modeling.model import ScoringModel, probabilities


class PayloadError(BadInputError):
    """A payload that is not the seed's shape; says which field."""


def predict_payload(model: ScoringModel, text: str) -> tuple[dict, list[str]]:
    """Return ({"visitorid": ..., "propensity_to_buy": p}, features the payload did not give)."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("features"), dict):
        raise PayloadError('payload must be an object with a "features" object, as in the seed\'s API')
    given = payload["features"]
    missing = [f for f in SEED_FEATURES if f not in given]
    if missing:
        raise PayloadError("missing feature(s): " + ", ".join(missing))
    values = []
    for name in model.features:
        value = given.get(name)
        if value is None:
            values.append(math.nan)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PayloadError(f"feature '{name}' must be a finite number, got {value!r}")
        if value < 0:
            raise PayloadError(f"feature '{name}' must not be negative, got {value!r}")
        values.append(float(value))
    unknown = [f for f in model.features if given.get(f) is None]
    p = float(probabilities(model, np.array([values], dtype=np.float32), threads=1)[0])
    return {"visitorid": payload.get("visitorid"), "propensity_to_buy": p}, unknown
