"""On-demand scoring of the seed's JSON payload, with the same model and calibration as the nightly job."""

from __future__ import annotations

import json
import math

import numpy as np

from models_py.errors import BadInputError
from models_py.modeling import repeat_purchase
from models_py.modeling.dataset import SEED_FEATURES
from models_py.modeling.model import ScoringModel, probabilities

MAX_PAYLOAD_BYTES = 64 * 1024  # one visitor's features: a few hundred bytes
MAX_FEATURE_VALUE = 1e12  # counts, days and rates; anything larger is not a feature value


class PayloadError(BadInputError):
    """A payload that is not the seed's shape; says which field."""


def _feature_value(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"feature '{name}' must be a finite number, got {str(value)[:40]!r}")
    if isinstance(value, int) and abs(value) > MAX_FEATURE_VALUE:
        raise PayloadError(f"feature '{name}' is out of range (at most {MAX_FEATURE_VALUE:g})")
    if not math.isfinite(value):
        raise PayloadError(f"feature '{name}' must be a finite number, got {value!r}")
    if value < 0:
        raise PayloadError(f"feature '{name}' must not be negative, got {value!r}")
    if value > MAX_FEATURE_VALUE:
        raise PayloadError(f"feature '{name}' is out of range: {value!r} (at most {MAX_FEATURE_VALUE:g})")
    return float(value)


def predict_payload(model: ScoringModel, text: str) -> tuple[dict, list[str]]:
    """Return ({"visitorid", "propensity_to_buy", "model", "features_used"}, features the payload did not give).

    A payload with every one of the champion's features is scored by the champion. One with the original API's 14
    (the usual case) is scored by the champion's companion trained on those 14 alone, with the same cut-offs and
    calibration: the champion itself never saw its other features missing and would score such a payload badly."""
    if len(text) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload is over {MAX_PAYLOAD_BYTES:,} characters: one visitor's payload is far smaller")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not valid JSON: {exc}") from exc
    except (RecursionError, ValueError) as exc:  # nesting too deep, a number too long to convert
        raise PayloadError(f"payload is not a feature payload: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("features"), dict):
        raise PayloadError('payload must be an object with a "features" object, as in the seed\'s API')
    given = payload["features"]
    missing = [f for f in SEED_FEATURES if f not in given]
    if missing:
        raise PayloadError("missing feature(s): " + ", ".join(missing))
    strange = sorted(set(given) - set(repeat_purchase.mart_columns(model)) - set(SEED_FEATURES))
    if strange:
        raise PayloadError(
            "unknown feature name(s): " + ", ".join(map(repr, strange[:10])) + " (the names are those of "
            "marts.fct_visitor_features, e.g. " + ", ".join(SEED_FEATURES[:3]) + ")"
        )
    companion = getattr(model, "companion", None)
    inputs = repeat_purchase.mart_columns(model)  # a derived feature is computed from the others, never given
    # A name given as null is the mart's null (a rate with nothing to rate), which the champion scores as the night
    # does; a name left out is unknown, and only the companion scores without it.
    scorer = companion if companion is not None and any(f not in given for f in inputs) else model
    inputs = inputs if scorer is model else scorer.features
    values = [math.nan if given.get(name) is None else _feature_value(name, given[name]) for name in inputs]
    unknown = [f for f in inputs if f not in given]
    p = float(probabilities(scorer, np.array([values], dtype=np.float32), threads=1)[0])
    used = "the original 14" if scorer is companion else f"all {len(model.features)}"
    return {"visitorid": payload.get("visitorid"), "propensity_to_buy": p, "model": model.version,
            "features_used": used}, unknown  # fmt: skip
