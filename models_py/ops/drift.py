"""Drift monitoring: population stability index of each feature (training population vs tonight) and of the scores
(yesterday vs tonight), stored in the warehouse; above a threshold a warning, above another a failed gate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np

from models_py.errors import GateFailed
from models_py.modeling.dataset import FEATURES_TABLE, to_matrix
from models_py.warehouse.connection import fetch_arrow

BINS = 10
EPS = 1e-4  # an empty bin would make the PSI infinite
SAMPLE_MODULUS = 5  # visitor_id % 5 = 0: a fifth of the visitors, the same ones every night


@dataclass(frozen=True)
class Drift:
    name: str
    psi: float
    status: str


def psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float:
    """PSI over the reference's quantile bins, missing values as a bin of their own."""
    ref_ok, cur_ok = ~np.isnan(reference), ~np.isnan(current)
    edges = np.unique(np.quantile(reference[ref_ok], np.linspace(0, 1, bins + 1)[1:-1])) if ref_ok.any() else []

    def shares(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(edges, x[ok], side="right"), minlength=len(edges) + 1)
        counts = np.append(counts, (~ok).sum()).astype(np.float64)
        return np.maximum(counts / max(len(x), 1), EPS)

    r, c = shares(reference, ref_ok), shares(current, cur_ok)
    return float(np.sum((c - r) * np.log(c / r)))


def status(value: float, warn: float, fail: float) -> str:
    return "fail" if value >= fail else "warn" if value >= warn else "ok"


def _sample(con: duckdb.DuckDBPyConnection, as_of: date, features: list[str]) -> np.ndarray:
    table = fetch_arrow(
        con,
        f"select {', '.join(features)} from {FEATURES_TABLE} where as_of_date = ? and visitor_id % ? = 0",
        [as_of, SAMPLE_MODULUS],
    )
    return to_matrix(table, features)


def feature_drift(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    as_of: date,
    reference: date,
    model_version: str,
    features: list[str],
    warn: float,
    fail: float,
) -> list[Drift]:
    """PSI of every model feature between the model's latest training cut-off and tonight."""
    ref, cur = _sample(con, reference, features), _sample(con, as_of, features)
    if not len(ref) or not len(cur):
        return []  # the reference cut-off is gone from the mart: nothing to compare with
    drifts = [Drift(f, psi(ref[:, j], cur[:, j]), "") for j, f in enumerate(features)]
    drifts = [Drift(d.name, d.psi, status(d.psi, warn, fail)) for d in drifts]
    con.execute("delete from ml.feature_drift where run_id = ?", [run_id])
    con.executemany(
        "insert into ml.feature_drift (run_id, as_of_date, reference_as_of_date, model_version, feature, psi, status) "
        "values (?, ?, ?, ?, ?, ?, ?)",
        [[run_id, as_of, reference, model_version, d.name, d.psi, d.status] for d in drifts],
    )
    return drifts


def score_drift(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    as_of: date,
    scores: np.ndarray,
    warn: float,
    fail: float,
) -> Drift | None:
    """PSI of tonight's propensities against the last scored day before tonight (None on the first night)."""
    row = con.execute(
        "select max(as_of_date) from ml.visitor_propensity_score_history where as_of_date < ?", [as_of]
    ).fetchone()
    if not row or row[0] is None:  # the very first night: no history yet
        return None
    previous_day = row[0]
    previous = con.execute(
        "select propensity from ml.visitor_propensity_score_history where as_of_date = ?", [previous_day]
    ).fetchnumpy()["propensity"]
    value = psi(previous, scores)
    d = Drift("propensity", value, status(value, warn, fail))
    con.execute("delete from ml.score_drift where run_id = ?", [run_id])
    con.execute(
        "insert into ml.score_drift (run_id, as_of_date, previous_as_of_date, psi, mean_propensity, "
        "previous_mean_propensity, status) values (?, ?, ?, ?, ?, ?, ?)",
        [run_id, as_of, previous_day, value, float(scores.mean()), float(previous.mean()), d.status],
    )
    return d


def raise_if_drifted(drifts: list[Drift], what: str, fail: float) -> list[Drift]:
    """Fail the run on drift above the failure level; return the ones above the warning level."""
    if not drifts:
        return []
    failed = [d for d in drifts if d.status == "fail"]
    if failed:
        worst = ", ".join(f"{d.name} PSI {d.psi:.3f}" for d in sorted(failed, key=lambda d: -d.psi)[:5])
        raise GateFailed(
            f"drift gate failed on {what}: {worst} (failure level PSI >= {fail}; set PROPENSITY_DRIFT_FAIL_PSI "
            "to change it)"
        )
    return [d for d in drifts if d.status == "warn"]


def check_feature_drift(
    con: duckdb.DuckDBPyConnection, cfg, run_id: str, as_of: date, model, say: Callable[[str], None]
) -> None:
    """Feature drift of tonight against the champion's latest training cut-off: stored, warned, or a failed gate."""
    reference = date.fromisoformat(model.meta.training_as_of_dates[-1])
    found = feature_drift(
        con, run_id, as_of, reference, model.version, model.features, cfg.drift_warn_psi, cfg.drift_fail_psi
    )
    warned = raise_if_drifted(found, f"features as of {as_of} vs the training cut-off {reference}", cfg.drift_fail_psi)
    if not found:
        say(f"  no feature drift measured: the training cut-off {reference} is not in the feature mart")
        return
    worst = max(found, key=lambda d: d.psi)
    say(
        f"  largest feature drift: {worst.name} PSI {worst.psi:.3f}; "
        f"{len(warned)} feature(s) above the warning level {cfg.drift_warn_psi}"
    )
    for d in warned:
        say(f"  warning: feature {d.name} drifted, PSI {d.psi:.3f} (ml.feature_drift)")


def check_score_drift(
    con: duckdb.DuckDBPyConnection, cfg, run_id: str, as_of: date, propensity: np.ndarray, say: Callable[[str], None]
) -> None:
    shifted = score_drift(con, run_id, as_of, propensity, cfg.drift_warn_psi, cfg.drift_fail_psi)
    if shifted:
        raise_if_drifted([shifted], f"scores as of {as_of} vs the previous day", cfg.drift_fail_psi)
        say(f"  score drift vs the previous day: PSI {shifted.psi:.3f} ({shifted.status})")
