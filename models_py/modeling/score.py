"""Score every visitor seen before the as-of date: a calibrated probability, decile and segment for all, and reason
codes for the top decile (the visitors a campaign targets).

Two passes over tonight's features: the model's prediction for every visitor in Arrow batches, then XGBoost's
per-feature contributions only for the top decile. Contributions cost several times a prediction; computing them
for the nine deciles nobody targets was most of the scoring time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa
import xgboost as xgb

from models_py.errors import JobFailed
from models_py.modeling import repeat_purchase
from models_py.modeling.dataset import FEATURES_TABLE, to_matrix
from models_py.modeling.model import ScoringModel
from models_py.shop_calendar import utc_now_naive

REASONS = 3
REASON_DECILES = 1  # reason codes for deciles 1..REASON_DECILES
SAMPLE_MODULUS = 5  # the drift check looks at the visitors with visitor_id % 5 == 0


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


def _feature_batches(
    con: duckdb.DuckDBPyConnection, features: list[str], as_of: date, batch_rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Tonight's (visitor ids, float32 feature matrix) in batches, read on a thread of its own so that DuckDB decodes
    the next batch while XGBoost predicts this one."""
    columns = ", ".join(f"cast({c} as float) as {c}" for c in features)
    out: queue.Queue = queue.Queue(maxsize=2)

    def read(cursor: duckdb.DuckDBPyConnection) -> None:
        try:
            reader = cursor.execute(
                f"select visitor_id, {columns} from {FEATURES_TABLE} where as_of_date = ?", [as_of]
            ).to_arrow_reader(batch_rows)
            for b in reader:
                out.put(
                    (b.column(0).to_numpy(), np.column_stack([c.to_numpy(zero_copy_only=False) for c in b.columns[1:]]))
                )
            out.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            out.put(exc)

    thread = threading.Thread(target=read, args=(con.cursor(),), daemon=True)
    thread.start()
    while (item := out.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


def _predict_all(
    con: duckdb.DuckDBPyConnection, model: ScoringModel, as_of: date, batch_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every visitor's id and probability, and the features of a fixed fifth of them (for the drift check)."""
    ids, raw, sample = [], [], []
    for visitor_id, mart_x in _feature_batches(con, repeat_purchase.mart_columns(model), as_of, batch_rows):
        x = repeat_purchase.complete(model, mart_x)
        ids.append(visitor_id)
        margin = repeat_purchase.offset(getattr(model, "repeat_purchase", None), model.features, x)
        raw.append(model.booster.inplace_predict(x, validate_features=False, base_margin=margin))
        sample.append(x[visitor_id % SAMPLE_MODULUS == 0])
    if not ids:
        raise JobFailed(f"no visitors to score at {as_of}: are features built for that date?")
    return np.concatenate(ids), model.calibration.apply(np.concatenate(raw)), np.concatenate(sample)


def _reasons_for(
    con: duckdb.DuckDBPyConnection, model: ScoringModel, as_of: date, visitor_id: np.ndarray, threads: int
) -> np.ndarray:
    """Top contributing features of these visitors, in their order, as indices into the model's features."""
    columns = repeat_purchase.mart_columns(model)
    con.register("reason_visitors", pa.table({"visitor_id": visitor_id}))
    try:
        table = con.execute(
            f"""select f.visitor_id, {", ".join(f"f.{c}" for c in columns)} from {FEATURES_TABLE} f
                join reason_visitors using (visitor_id) where f.as_of_date = ?""",
            [as_of],
        ).to_arrow_table()
    finally:
        con.unregister("reason_visitors")
    x = repeat_purchase.complete(model, to_matrix(table, columns))
    margin = repeat_purchase.offset(getattr(model, "repeat_purchase", None), model.features, x)
    dm = xgb.DMatrix(x, base_margin=margin, feature_names=model.features, nthread=threads)
    # Approximate (Saabas) contributions: the same attribution idea as SHAP at a fraction of the cost.
    reasons = _top_reasons(model.booster.predict(dm, pred_contribs=True, approx_contribs=True)[:, :-1])
    fetched = table["visitor_id"].to_numpy()
    order = np.argsort(fetched)
    return reasons[order[np.searchsorted(fetched, visitor_id, sorter=order)]]


@dataclass
class Scored:
    scores: pa.Table
    feature_sample: np.ndarray  # tonight's features of the visitors with visitor_id % SAMPLE_MODULUS == 0


def score(
    con: duckdb.DuckDBPyConnection, model: ScoringModel, as_of: date, run_id: str, batch_rows: int, threads: int
) -> Scored:
    visitor_id, p, sample = _predict_all(con, model, as_of, batch_rows)
    n = p.size
    rank = np.empty(n, np.int64)
    rank[np.lexsort((visitor_id, -p))] = np.arange(n)
    decile = (rank * 10 // n + 1).astype(np.int8)
    explained = np.flatnonzero(decile <= REASON_DECILES)
    reasons = np.full((n, REASONS), -1, np.int32)
    if explained.size:
        reasons[explained] = _reasons_for(con, model, as_of, visitor_id[explained], threads)
    names = pa.array(model.features)
    table = pa.table(
        {
            "visitor_id": visitor_id,
            "as_of_date": pa.array(np.full(n, np.datetime64(as_of, "D"))),
            "propensity": p,
            "decile": decile,
            "segment": pa.DictionaryArray.from_arrays(_segment(decile, p, model.threshold), ["hot", "warm", "cold"]),
            **{
                f"reason_{k + 1}": pa.DictionaryArray.from_arrays(
                    pa.array(reasons[:, k], mask=reasons[:, k] < 0), names
                )
                for k in range(REASONS)
            },
            "model_version": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [model.version]),
            "run_id": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [run_id]),
            "scored_at": pa.array(np.full(n, np.datetime64(utc_now_naive(), "s"))),
        }
    )
    return Scored(table, sample)
