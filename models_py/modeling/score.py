"""Score every visitor seen before the as-of date: a calibrated probability, decile and segment for all, and reason
codes for the top decile (the visitors a campaign targets).

One pass over tonight's features in Arrow batches: the model's prediction for every visitor, keeping the rows that
can still end in the top decile; then XGBoost's per-feature contributions for the top decile only. Contributions
cost several times a prediction, and reading the mart again for them cost a third of the scoring time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa
import xgboost as xgb

from models_py.errors import JobFailed
from models_py.modeling import repeat_purchase
from models_py.modeling.dataset import FEATURES_TABLE, column_major
from models_py.modeling.model import ScoringModel
from models_py.modeling.ranking import by_visitor, deciles
from models_py.shop_calendar import utc_now_naive

REASONS = 3
REASON_INDEX = np.int16  # a feature's index in a reason code: 2 bytes a code, not 4, for 140M visitors at scale 100
REASON_DECILES = 1  # reason codes for deciles 1..REASON_DECILES
SAMPLE_MODULUS = 5  # the drift check looks at the visitors with visitor_id % 5 == 0 ...
DRIFT_SAMPLE_ROWS = 1_000_000  # ... or, in a larger shop, at a sparser subset of them (see sample_modulus)


def sample_modulus(visitors: int) -> int:
    """The drift sample's modulus: visitor_id % 5 == 0, thinned to a multiple of 5 where a fifth of the visitors
    would be more than DRIFT_SAMPLE_ROWS (28M rows of 49 features at scale 100, 5.5 GB, for a PSI that a million
    rows already pins down). The same visitors every night while the shop's size stays in the same band."""
    return SAMPLE_MODULUS * max(1, -(-visitors // (SAMPLE_MODULUS * DRIFT_SAMPLE_ROWS)))


def _top_reasons(contrib: np.ndarray) -> np.ndarray:
    """Indices of the REASONS largest contributions per row, largest first (a few argmax passes beat a sort)."""
    work = np.array(contrib, dtype=np.float32, copy=True)
    rows = np.arange(work.shape[0])
    top = np.empty((work.shape[0], REASONS), dtype=REASON_INDEX)
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
    """Tonight's (visitor ids, column-major float32 feature matrix) in batches, read on a thread of its own so that
    DuckDB decodes the next batch while XGBoost predicts this one."""
    columns = ", ".join(f"cast({c} as float) as {c}" for c in features)
    out: queue.Queue = queue.Queue(maxsize=2)

    def read(cursor: duckdb.DuckDBPyConnection) -> None:
        try:
            reader = cursor.execute(
                f"select visitor_id, {columns} from {FEATURES_TABLE} where as_of_date = ?", [as_of]
            ).to_arrow_reader(batch_rows)
            for b in reader:
                # Copied: a view of the ids would keep DuckDB's whole batch, every feature column, alive.
                ids = b.column(0).to_numpy().copy()
                out.put((ids, column_major(b.columns[1:])))
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


@dataclass
class _TopRows:
    """The rows with the highest probabilities seen so far, ties at the edge included: at least `keep` of them once
    that many have been seen. Every row of the final top `keep` is kept when it is seen (the edge only rises), so
    the top decile's features are at hand without reading the mart a second time. A batch's features are copied
    only for its rows at or above the edge; the edge is raised, and the kept rows cut down to it, only once a
    quarter of `keep` more rows are kept: a few cuts in all, where cutting on every batch copied every kept row
    again each time (quadratic in the shop's size). A cut drops rows from a chunk's ids and probabilities and
    notes which of its feature rows are left; the features themselves are copied only once fewer than half of
    them are left, and at the end (each later cut drops a few rows of every chunk: copying every kept row's
    features at each cut was a tenth of scale 10's scoring)."""

    keep: int
    edge: float = -np.inf
    # (visitor ids, probabilities, features, which feature rows are these ids' (None: all, in order)) of kept rows
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=list)
    rows: int = 0
    cut_at: int = 0

    def add(self, visitor_id: np.ndarray, p: np.ndarray, x: np.ndarray) -> None:
        chunk = self._at_or_above_edge((visitor_id, p, x, None))
        self.chunks.append(chunk)
        self.rows += chunk[1].size
        if self.keep > 0 and self.rows >= max(self.cut_at, self.keep + self.keep // 4 + 1):
            self._cut()

    def _cut(self) -> None:
        pool = np.concatenate([c[1] for c in self.chunks])
        self.edge = max(self.edge, float(np.partition(pool, pool.size - self.keep)[pool.size - self.keep]))
        self.chunks = [self._at_or_above_edge(c) for c in self.chunks]
        self.rows = sum(c[1].size for c in self.chunks)
        self.cut_at = self.rows + self.keep // 4 + 1  # ties at the edge may keep more than `keep`: cut again later

    def _at_or_above_edge(self, chunk: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]):
        """The chunk's rows at or above the edge (the chunk itself when all are)."""
        visitor_id, p, x, rows = chunk
        above = p >= self.edge
        if above.all():
            return chunk
        at = np.flatnonzero(above)
        rows = at if rows is None else rows[at]
        if 2 * rows.size < len(x):
            return visitor_id[at], p[at], x[rows], None  # indexing, not take: take copies a column-major x whole
        return visitor_id[at], p[at], x, rows

    def take_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Visitor ids and features of the kept rows, handed over: the chunks are let go as they are joined (a
        tenth of the visitors' features, 2.8 GB at scale 100, held once, not twice)."""
        if 0 < self.keep < self.rows:
            self._cut()
        chunks, self.chunks = self.chunks, []
        ids = np.concatenate([c[0] for c in chunks])
        x = np.empty((ids.size, chunks[0][2].shape[1]), np.float32)
        done = 0
        while chunks:
            _, p, features, rows = chunks.pop(0)
            if rows is None:
                x[done : done + p.size] = features
            else:
                x[done : done + p.size] = features[rows]
            done += p.size
        return ids, x


def _predict_all(
    con: duckdb.DuckDBPyConnection, model: ScoringModel, as_of: date, batch_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, _TopRows]:
    """Every visitor's id and probability, the features of a fixed fifth of them (for the drift check) and of the
    top decile's candidates (for the reason codes)."""
    visitors = con.execute(f"select count(*) from {FEATURES_TABLE} where as_of_date = ?", [as_of]).fetchone()[0]
    if not visitors:
        raise JobFailed(f"no visitors to score at {as_of}: are features built for that date?")
    top = _TopRows(keep=-(-visitors * REASON_DECILES // 10))
    modulus = sample_modulus(visitors)
    # Filled in place: a list of batches joined at the end would hold every id and probability twice.
    ids, probabilities, sample, done = np.empty(visitors, np.int64), np.empty(visitors), [], 0
    for visitor_id, mart_x in _feature_batches(con, repeat_purchase.mart_columns(model), as_of, batch_rows):
        x, p = predict_probabilities(model, mart_x)
        if done + p.size > visitors:
            raise JobFailed(f"the features as of {as_of} changed while they were scored (more than {visitors:,} rows)")
        ids[done : done + p.size], probabilities[done : done + p.size] = visitor_id, p
        done += p.size
        sample.append(x[np.flatnonzero(visitor_id % modulus == 0)])
        top.add(visitor_id, p, x)
    if done != visitors:
        raise JobFailed(f"the features as of {as_of} changed while they were scored ({done:,} of {visitors:,} rows)")
    return ids, probabilities, np.concatenate(sample), top


def predict_probabilities(model: ScoringModel, mart_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's matrix for these rows of its mart columns (float32), and its calibrated probabilities."""
    x = repeat_purchase.complete(model, mart_x)
    margin = repeat_purchase.offset(getattr(model, "repeat_purchase", None), model.features, x)
    return x, model.calibration.apply(model.booster.inplace_predict(x, validate_features=False, base_margin=margin))


def reasons_for(model: ScoringModel, x: np.ndarray, threads: int) -> np.ndarray:
    """Top contributing features of these rows, as indices into the model's features."""
    margin = repeat_purchase.offset(getattr(model, "repeat_purchase", None), model.features, x)
    dm = xgb.DMatrix(x, base_margin=margin, feature_names=model.features, nthread=threads)
    # Approximate (Saabas) contributions: the same attribution idea as SHAP at a fraction of the cost.
    return _top_reasons(model.booster.predict(dm, pred_contribs=True, approx_contribs=True)[:, :-1])


@dataclass
class Scored:
    scores: pa.Table
    feature_sample: np.ndarray  # tonight's features of the visitors with visitor_id % sample_modulus(visitors) == 0


def score(
    con: duckdb.DuckDBPyConnection, model: ScoringModel, as_of: date, run_id: str, batch_rows: int, threads: int
) -> Scored:
    visitor_id, p, sample, top = _predict_all(con, model, as_of, batch_rows)
    visitor_id, p = by_visitor(visitor_id, p)
    decile = deciles(visitor_id, p)
    reasons = _top_decile_reasons(model, visitor_id, decile, top, batch_rows, threads)
    return Scored(scores_table(model, as_of, run_id, visitor_id, p, decile, reasons), sample)


def _top_decile_reasons(
    model: ScoringModel, visitor_id: np.ndarray, decile: np.ndarray, top: _TopRows, batch_rows: int, threads: int
) -> np.ndarray:
    """Every visitor's reason codes (-1 below decile REASON_DECILES), from the kept rows' features, which are let go
    before the scores table is built."""
    explained = np.flatnonzero(decile <= REASON_DECILES)
    reasons = np.full((decile.size, REASONS), -1, REASON_INDEX)
    if explained.size:
        kept_id, kept_x = top.take_rows()
        order = np.argsort(kept_id)
        rows = order[np.minimum(np.searchsorted(kept_id, visitor_id[explained], sorter=order), order.size - 1)]
        if not np.array_equal(kept_id[rows], visitor_id[explained]):
            raise AssertionError("a top-decile visitor was not among the kept rows")  # _TopRows's promise broken
        for start in range(0, explained.size, batch_rows):  # in batches: contributions take 8 bytes a cell
            part = slice(start, start + batch_rows)
            reasons[explained[part]] = reasons_for(model, kept_x[rows[part]], threads)
    return reasons


def scores_table(
    model: ScoringModel,
    as_of: date,
    run_id: str,
    visitor_id: np.ndarray,
    p: np.ndarray,
    decile: np.ndarray,
    reasons: np.ndarray,
) -> pa.Table:
    """The night's rows as the score history holds them; ``reasons`` are indices into the model's features (-1:
    none)."""
    n = p.size
    names = pa.array(model.features)

    def constant(value: pa.Array) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(np.zeros(n, np.int8), value)

    # The night's constants and reasons as dictionaries with narrow indices (a byte a constant, two bytes a reason):
    # at scale 100 this table holds 140M rows.
    return pa.table(
        {
            "visitor_id": visitor_id,
            "as_of_date": constant(pa.array([as_of], pa.date32())),
            "propensity": p,
            "decile": decile,
            "segment": pa.DictionaryArray.from_arrays(_segment(decile, p, model.threshold), ["hot", "warm", "cold"]),
            **{
                f"reason_{k + 1}": pa.DictionaryArray.from_arrays(
                    pa.array(reasons[:, k], mask=reasons[:, k] < 0), names
                )
                for k in range(REASONS)
            },
            "model_version": constant(pa.array([model.version])),
            "run_id": constant(pa.array([run_id])),
            "scored_at": constant(pa.array([np.datetime64(utc_now_naive(), "s")])),
        }
    )
