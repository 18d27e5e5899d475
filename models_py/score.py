"""Score every visitor seen before the as-of date, in Arrow batches, with reason codes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pyarrow as pa
import xgboost as xgb

from models_py.features import batches_to_score, to_matrix
from models_py.registry import LoadedModel

REASONS = 3


def _segment(decile: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """hot: above the decision threshold chosen on validation; warm: rest of the top decile; cold: the others."""
    return np.where(p >= threshold, "hot", np.where(decile == 1, "warm", "cold"))


def score(
    con: duckdb.DuckDBPyConnection, model: LoadedModel, as_of: date, run_id: str, batch_rows: int, threads: int
) -> pa.Table:
    features = model.meta.features
    ids, probs, reasons = [], [], []
    names = np.array(features + ["bias"])
    for batch in batches_to_score(con, as_of, features, batch_rows):
        table = pa.Table.from_batches([batch])
        x = to_matrix(table, features)
        dm = xgb.DMatrix(x, feature_names=features, nthread=threads)
        raw = model.booster.predict(dm)
        # Approximate (Saabas) contributions: same attribution idea as SHAP at a fraction of the cost.
        contrib = model.booster.predict(dm, pred_contribs=True, approx_contribs=True)[:, :-1]
        top = np.argsort(-contrib, axis=1)[:, :REASONS]
        ids.append(table["visitor_id"].to_numpy())
        probs.append(model.calibration.apply(raw))
        reasons.append(names[top])
    if not ids:
        raise ValueError(f"no visitors to score at {as_of}: are features built for that date?")
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
            "segment": _segment(decile, p, model.meta.threshold),
            **{f"reason_{k + 1}": reason[:, k] for k in range(REASONS)},
            "model_version": pa.array([model.meta.version] * n),
            "run_id": pa.array([run_id] * n),
            "scored_at": pa.array(np.full(n, np.datetime64(datetime.now(UTC).replace(tzinfo=None), "s"))),
        }
    )
