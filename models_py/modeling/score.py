"""Score every visitor seen before the as-of date, in Arrow batches, with reason codes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pyarrow as pa
import xgboost as xgb

from models_py.errors import JobFailed
from models_py.modeling.dataset import batches_to_score, to_matrix
from models_py.modeling.model import ScoringModel

REASONS = 3


def _top_reasons(contrib: np.ndarray) -> np.ndarray:
    """Indices of the REASONS largest contributions per row, largest first (a few argmax passes beat a sort)."""
    work = np.array(contrib, dtype=np.float32, copy=True)
    rows = np.arange(work.shape[0])
    top = np.empty((work.shape[0], REASONS), dtype=np.int32)
    for k in range(REASONS):
        top[:, k] = np.argmax(work, axis=1)
        work[rows, top[:, k]] = -np.inf
    return top


def _segment(decile: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """0 hot: above the decision threshold chosen on validation; 1 warm: rest of the top decile; 2 cold: others."""
    return np.where(p >= threshold, 0, np.where(decile == 1, 1, 2)).astype(np.int8)


def score(
    con: duckdb.DuckDBPyConnection, model: ScoringModel, as_of: date, run_id: str, batch_rows: int, threads: int
) -> pa.Table:
    features = model.features
    ids, probs, reasons = [], [], []
    names = pa.array(features)
    for batch in batches_to_score(con, as_of, features, batch_rows):
        table = pa.Table.from_batches([batch])
        x = to_matrix(table, features)
        dm = xgb.DMatrix(x, feature_names=features, nthread=threads)
        # Approximate (Saabas) contributions: same attribution idea as SHAP at a fraction of the cost. They add
        # up (with the bias, last column) to the raw margin, so they give the prediction too: one pass, not two.
        contrib = model.booster.predict(dm, pred_contribs=True, approx_contribs=True)
        raw = 1.0 / (1.0 + np.exp(-contrib.sum(axis=1, dtype=np.float64)))
        ids.append(table["visitor_id"].to_numpy())
        probs.append(model.calibration.apply(raw))
        reasons.append(_top_reasons(contrib[:, :-1]))
    if not ids:
        raise JobFailed(f"no visitors to score at {as_of}: are features built for that date?")
    visitor_id = np.concatenate(ids)
    p = np.concatenate(probs)
    reason = np.concatenate(reasons)
    rank = np.empty(p.size, np.int64)
    rank[np.lexsort((visitor_id, -p))] = np.arange(p.size)
    decile = (rank * 10 // p.size + 1).astype(np.int8)
    n = p.size
    return pa.table(
        {
            "visitor_id": visitor_id,
            "as_of_date": pa.array(np.full(n, np.datetime64(as_of, "D"))),
            "propensity": p,
            "decile": decile,
            "segment": pa.DictionaryArray.from_arrays(_segment(decile, p, model.threshold), ["hot", "warm", "cold"]),
            **{f"reason_{k + 1}": pa.DictionaryArray.from_arrays(reason[:, k], names) for k in range(REASONS)},
            "model_version": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [model.version]),
            "run_id": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [run_id]),
            "scored_at": pa.array(np.full(n, np.datetime64(datetime.now(UTC).replace(tzinfo=None), "s"))),
        }
    )
