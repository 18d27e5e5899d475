"""Features and labels out of the warehouse as Arrow, into the float matrices XGBoost takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa

from models_py.config import Settings
from models_py.errors import JobFailed
from models_py.warehouse.connection import fetch_arrow

FEATURES_TABLE = "marts.fct_visitor_features"
LABELS_TABLE = "marts.fct_visitor_labels"
KEYS = ("as_of_date", "visitor_id")
VISITOR_SALT = 17  # the hash that samples a validation cut-off's visitors and gives each its role

# The seed's 14 features, under their exact names (its on-demand payload uses them).
SEED_FEATURES = (
    "total_events_30d", "num_views_30d", "num_addtocart_30d", "num_unique_items_30d",
    "total_events_7d", "num_views_7d", "num_addtocart_7d", "num_unique_items_7d",
    "total_events_1d", "num_views_1d", "num_addtocart_1d", "num_unique_items_1d",
    "days_since_last_event", "add_to_cart_rate_7d",
)  # fmt: skip


def product_features(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every feature column of the mart, in its order: the seed's 14 first, then the product's."""
    cols = [r[0] for r in con.execute(f"select * from {FEATURES_TABLE} limit 0").description]
    return [c for c in cols if c not in KEYS]


def column_major(columns: list[pa.Array | pa.ChunkedArray]) -> np.ndarray:
    """The columns as a column-major (Fortran-order) float32 matrix, nulls as NaN, each column copied contiguously.
    XGBoost predicts from it as fast as from a row-major matrix, to the bit, so scoring skips the transposing copy
    (2-3 s of scale 10's 5-7 s read of 14.1M visitors' features)."""
    block = np.empty((len(columns[0]), len(columns)), dtype=np.float32, order="F")
    for j, column in enumerate(columns):
        block[:, j] = column.to_numpy(zero_copy_only=False)  # nulls become NaN
    return block


def row_major(columns: list[pa.Array | pa.ChunkedArray], out: np.ndarray | None = None) -> np.ndarray:
    """The columns as a row-major float32 matrix, nulls as NaN; fills ``out`` if given. Built column-major and copied
    once: a column written straight into a row-major matrix scatters every value (7x slower). The values are the
    same, to the bit."""
    block = column_major(columns)
    if out is None:
        return np.ascontiguousarray(block)
    out[...] = block
    return out


def to_matrix(table: pa.Table | pa.RecordBatch, features: list[str], out: np.ndarray | None = None) -> np.ndarray:
    """The features of a table as a row-major float32 matrix, nulls as NaN (XGBoost learns a direction for missing
    values); fills ``out`` if given."""
    return row_major([table[name].cast(pa.float64()) for name in features], out)


@dataclass
class LabelledSet:
    features: list[str]
    visitor_id: np.ndarray
    x: np.ndarray
    y: np.ndarray


def hash_unit(visitor_id: np.ndarray, salt: int | np.ndarray) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) per visitor (same split on every rerun)."""
    h = (visitor_id.astype(np.uint64) + np.asarray(salt).astype(np.uint64)) * np.uint64(0x9E3779B97F4A7C15)
    return ((h >> np.uint64(11)).astype(np.float64)) / float(1 << 53)


def labelled(
    con: duckdb.DuckDBPyConnection,
    dates: list[date],
    features: list[str],
    negative_keep_rate: float = 1.0,
    batch_rows: int = 200_000,
    source: str = FEATURES_TABLE,
    visitor_share: float = 1.0,
) -> LabelledSet:
    """Feature rows of labelled cut-offs with their labels, ordered by as-of date and visitor.

    With ``negative_keep_rate`` < 1 only that share of non-buyers is read, chosen by ``hash_unit`` of visitor and
    as-of day: the labels' keys are read first and sampled here, and only the kept rows' features are fetched.
    With ``visitor_share`` < 1 only that share of visitors is read, buyers and non-buyers alike, chosen by
    ``hash_unit`` of the visitor and ``VISITOR_SALT``.
    They stream in batches into one float32 matrix, so a large shop's cut-offs never sit in memory twice (as Arrow
    and as the matrix). ``source`` is the features mart or a view over it with extra columns.
    """
    keys = fetch_arrow(
        con,
        f"""select as_of_date, visitor_id, has_purchased from {LABELS_TABLE}
            where as_of_date in (select unnest(?::date[])) order by as_of_date, visitor_id""",
        [dates],
    )
    y = keys["has_purchased"].to_numpy()
    if negative_keep_rate < 1.0:
        day = keys["as_of_date"].cast(pa.int32()).to_numpy()  # days since 1970-01-01
        keep = (y == 1) | (hash_unit(keys["visitor_id"].to_numpy(), day) < negative_keep_rate)
        keys = keys.filter(pa.array(keep))
    if visitor_share < 1.0:
        keys = keys.filter(pa.array(hash_unit(keys["visitor_id"].to_numpy(), VISITOR_SALT) < visitor_share))
    con.register("labelled_keys", keys)
    cols = ", ".join(f"f.{c}" for c in features)
    try:
        reader = con.execute(
            f"""select k.visitor_id, {cols}, k.has_purchased from labelled_keys k
                join {source} f using (as_of_date, visitor_id) order by k.as_of_date, k.visitor_id"""
        ).to_arrow_reader(batch_rows)
        out = _fill(reader, features, keys.num_rows)
    finally:
        con.unregister("labelled_keys")
    return out


def _fill(reader: pa.RecordBatchReader, features: list[str], n: int) -> LabelledSet:
    out = LabelledSet(
        features=list(features),
        visitor_id=np.empty(n, np.int64),
        x=np.empty((n, len(features)), np.float32),
        y=np.empty(n, np.int8),
    )
    start = 0
    for batch in reader:
        stop = start + batch.num_rows
        out.visitor_id[start:stop] = batch["visitor_id"].to_numpy()
        out.y[start:stop] = batch["has_purchased"].to_numpy()
        to_matrix(batch, features, out=out.x[start:stop])
        start = stop
    if start != n:
        raise JobFailed(f"{n - start:,} labelled rows have no features: the marts disagree on their population")
    return out


def validation_share(con: duckdb.DuckDBPyConnection, validation_date: date, max_rows: int) -> float:
    """The share of a validation cut-off's visitors that training reads: all of them, or ``max_rows`` in a larger
    shop (a uniform sample: calibration, threshold and metrics stay unbiased, without weights)."""
    rows = con.execute(f"select count(*) from {LABELS_TABLE} where as_of_date = ?", [validation_date]).fetchone()[0]
    return min(1.0, max_rows / rows) if rows else 1.0


def negatives(con: duckdb.DuckDBPyConnection, dates: list[date]) -> int:
    """Non-buyers with complete labels at these cut-offs (sizes the training sample)."""
    return con.execute(
        f"""select count(*) from {LABELS_TABLE}
            where as_of_date in (select unnest(?::date[])) and has_purchased = 0""",
        [dates],
    ).fetchone()[0]


def labelled_dates(con: duckdb.DuckDBPyConnection, before: date, cfg: Settings, spine_only: bool = True) -> list[date]:
    """Spine cut-offs with labels whose windows end by ``before`` (never peek at the future): what models train and
    validate on. The mart only holds labels whose window had landed entirely when they were built; with
    ``spine_only=False`` also the dates a backtest was pointed at off the spine (they are test dates only)."""
    rows = con.execute(
        f"""select distinct as_of_date from {LABELS_TABLE}
            where as_of_date + to_days(?) <= ?::date
            order by 1""",
        [cfg.horizon_days, before],
    ).fetchall()
    return [r[0] for r in rows if not spine_only or cfg.on_spine(r[0])]
