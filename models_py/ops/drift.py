"""Drift monitoring: the population stability index (PSI) of each feature, tonight against the population the
champion was validated on, and of the scores, tonight against the last scored day. Stored in the warehouse; above
a threshold a warning, above another a failed gate.

Each model carries the profile of its validation population (``modeling.population``, saved with the model), so a
night needs no second read of old features: tonight's side is a fixed fifth of the visitors (visitor_id % 5 = 0)
taken from the batches scoring reads anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np

from models_py.errors import GateFailed
from models_py.modeling import repeat_purchase
from models_py.modeling.dataset import FEATURES_TABLE, to_matrix
from models_py.modeling.population import column, edges_of, profile, psi, shares
from models_py.modeling.score import SAMPLE_MODULUS
from models_py.warehouse import publish
from models_py.warehouse.connection import fetch_arrow
from models_py.warehouse.schema import FEATURE_DRIFT, SCORE_DRIFT, night_of_scores


@dataclass(frozen=True)
class Drift:
    name: str
    psi: float
    status: str


def status(value: float, warn: float, fail: float) -> str:
    return "fail" if value >= fail else "warn" if value >= warn else "ok"


def feature_drift(
    con: duckdb.DuckDBPyConnection, cfg, run_id: str, as_of: date, model, sample: np.ndarray
) -> list[Drift]:
    """PSI of every model feature between the model's validation population and tonight's sample."""
    reference = model.meta.population_profile or _profile_from_mart(con, model)
    warn_only = {f.strip() for f in cfg.drift_warn_only_features.split(",")}
    drifts = []
    for j, name in enumerate(model.features):
        ref = reference[name]
        value = psi(ref["shares"], shares(column(sample, j), ref["edges"]))
        fail = math.inf if name in warn_only else cfg.drift_fail_psi
        drifts.append(Drift(name, value, status(value, cfg.drift_warn_psi, fail)))
    con.execute(f"delete from {FEATURE_DRIFT} where run_id = ?", [run_id])
    con.executemany(
        f"insert into {FEATURE_DRIFT} (run_id, as_of_date, reference_as_of_date, model_version, feature, psi, status) "
        "values (?, ?, ?, ?, ?, ?, ?)",
        [[run_id, as_of, model.meta.validation_as_of_date, model.version, d.name, d.psi, d.status] for d in drifts],
    )
    return drifts


def score_drift(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    as_of: date,
    history_dir: Path,
    previous_day: date | None,
    scores: np.ndarray,
    warn: float,
    fail: float,
    model_version: str | None = None,
) -> Drift | None:
    """PSI of tonight's propensities against the last scored day before tonight, when the same model scored it
    (None on the first night, or after a change of model, which may rightly move every score)."""
    if previous_day is None:
        return None
    night = night_of_scores(history_dir, previous_day)
    previous_model = con.execute(f"select max(model_version) from {night}").fetchone()[0]
    if model_version is not None and previous_model != model_version:
        return None
    previous = con.execute(f"select propensity from {night}").fetchnumpy()
    previous = previous["propensity"]
    edges = edges_of(previous)
    value = psi(shares(previous, edges), shares(scores, edges))
    d = Drift("propensity", value, status(value, warn, fail))
    con.execute(f"delete from {SCORE_DRIFT} where run_id = ?", [run_id])
    con.execute(
        f"insert into {SCORE_DRIFT} (run_id, as_of_date, previous_as_of_date, psi, mean_propensity, "
        "previous_mean_propensity, status) values (?, ?, ?, ?, ?, ?, ?)",
        [run_id, as_of, previous_day, value, float(scores.mean()), float(previous.mean()), d.status],
    )
    return d


def mart_sample(con: duckdb.DuckDBPyConnection, model, as_of: date) -> np.ndarray:
    """The drift sample (visitor_id % 5 = 0) of a date in the model's features, read from the features mart."""
    columns = repeat_purchase.mart_columns(model)
    table = fetch_arrow(
        con,
        f"select {', '.join(columns)} from {FEATURES_TABLE} where as_of_date = ? and visitor_id % ? = 0",
        [as_of, SAMPLE_MODULUS],
    )
    return repeat_purchase.complete(model, to_matrix(table, columns))


def _profile_from_mart(con: duckdb.DuckDBPyConnection, model) -> dict[str, dict]:
    """The profile of a model saved before models carried one: its validation cut-off's rows, read from the mart."""
    day = date.fromisoformat(model.meta.validation_as_of_date)
    return profile(mart_sample(con, model, day), model.features)


def raise_if_drifted(drifts: list[Drift], what: str, fail: float) -> list[Drift]:
    """Fail the run on drift above the failure level; return the ones above the warning level."""
    failed = [d for d in drifts if d.status == "fail"]
    if failed:
        worst = ", ".join(f"{d.name} PSI {d.psi:.3f}" for d in sorted(failed, key=lambda d: -d.psi)[:5])
        raise GateFailed(
            f"drift gate failed on {what}: {worst} (failure level PSI >= {fail}; set PROPENSITY_DRIFT_FAIL_PSI "
            "to change it)"
        )
    return [d for d in drifts if d.status == "warn"]


def check_feature_drift(
    con: duckdb.DuckDBPyConnection, cfg, run_id: str, as_of: date, model, sample: np.ndarray, say: Callable[[str], None]
) -> None:
    """Feature drift of tonight against the champion's validation population: stored, warned, or a failed gate."""
    reference = model.meta.validation_as_of_date
    found = feature_drift(con, cfg, run_id, as_of, model, sample)
    warned = raise_if_drifted(found, f"features as of {as_of} vs the population of {reference}", cfg.drift_fail_psi)
    worst = max(found, key=lambda d: d.psi)
    say(f"  largest feature drift: {worst.name} PSI {worst.psi:.3f}; "
        f"{len(warned)} feature(s) above the warning level {cfg.drift_warn_psi}")  # fmt: skip
    for d in warned:
        say(f"  warning: feature {d.name} drifted, PSI {d.psi:.3f} (ml.feature_drift)")


def check_score_drift(
    con: duckdb.DuckDBPyConnection,
    cfg,
    run_id: str,
    as_of: date,
    propensity: np.ndarray,
    say: Callable[[str], None],
    model_version: str | None = None,
) -> None:
    previous_day = publish.previous_scored_date(cfg, as_of)
    shifted = score_drift(
        con,
        run_id,
        as_of,
        cfg.score_history_dir,
        previous_day,
        propensity,
        cfg.drift_warn_psi,
        cfg.drift_fail_psi,
        model_version,
    )
    if shifted:
        raise_if_drifted([shifted], f"scores as of {as_of} vs the previous day", cfg.drift_fail_psi)
        say(f"  score drift vs the previous day: PSI {shifted.psi:.3f} ({shifted.status})")
