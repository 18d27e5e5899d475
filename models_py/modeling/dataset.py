"""Features and labels out of the warehouse as Arrow, into the float matrices XGBoost takes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa

from models_py.errors import JobFailed

FEATURES_TABLE = "marts.fct_visitor_features"
LABELS_TABLE = "marts.fct_visitor_labels"
KEYS = ("as_of_date", "visitor_id")

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


def to_matrix(table: pa.Table | pa.RecordBatch, features: list[str], out: np.ndarray | None = None) -> np.ndarray:
    """Float32 matrix, nulls as NaN (XGBoost learns a direction for missing values); fills ``out`` if given."""
    if out is None:
        out = np.empty((table.num_rows, len(features)), dtype=np.float32)
    for j, name in enumerate(features):
        col = table[name].cast(pa.float64())
        out[:, j] = col.to_numpy(zero_copy_only=False)  # nulls become NaN
    return out


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


def _hash_unit_sql(visitor_id: str, salt: str) -> str:
    """``hash_unit`` in DuckDB SQL, bit for bit (64-bit wrap-around done in 128-bit integers)."""
    return (
        f"(((({visitor_id} + {salt})::uhugeint * 11400714819323198485::uhugeint) % 18446744073709551616::uhugeint)"
        " >> 11)::double / 9007199254740992.0"
    )


def labelled(
    con: duckdb.DuckDBPyConnection,
    dates: list[date],
    features: list[str],
    negative_keep_rate: float = 1.0,
    batch_rows: int = 1_000_000,
    source: str = FEATURES_TABLE,
) -> LabelledSet:
    """Feature rows of complete-label cut-offs with their labels.

    With ``negative_keep_rate`` < 1 only that share of non-buyers is read (chosen by ``hash_unit`` of visitor and
    as-of day). Rows stream in batches into one float32 matrix, so a large shop's cut-offs never sit in memory
    twice (as Arrow and as the matrix). ``source`` is the features mart or a view over it with extra columns.
    """
    sample = _hash_unit_sql("f.visitor_id", "(f.as_of_date - date '1970-01-01')")
    rows = f"""from {source} f
            join {LABELS_TABLE} l using (as_of_date, visitor_id)
            where f.as_of_date in (select unnest(?::date[])) and l.is_label_complete
              and (l.has_purchased = 1 or {sample} < ?)"""
    params = [dates, negative_keep_rate]
    n = con.execute(f"select count(*) {rows}", params).fetchone()[0]
    cols = ", ".join(f"f.{c}" for c in features)
    reader = con.execute(
        f"select f.visitor_id, {cols}, l.has_purchased {rows} order by f.as_of_date, f.visitor_id",
        params,
    ).to_arrow_reader(batch_rows)
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
        raise JobFailed(f"the labelled rows changed while being read ({start:,} read, {n:,} counted)")
    return out


def negatives(con: duckdb.DuckDBPyConnection, dates: list[date]) -> int:
    """Non-buyers with complete labels at these cut-offs (sizes the training sample)."""
    return con.execute(
        f"""select count(*) from {LABELS_TABLE}
            where as_of_date in (select unnest(?::date[])) and is_label_complete and has_purchased = 0""",
        [dates],
    ).fetchone()[0]


def labelled_dates(con: duckdb.DuckDBPyConnection, before: date, horizon_days: int) -> list[date]:
    """As-of dates whose labels are complete and whose windows end by ``before`` (never peek at the future)."""
    rows = con.execute(
        f"""select as_of_date from {LABELS_TABLE}
            group by 1 having bool_and(is_label_complete)
               and as_of_date + to_days(?) <= ?::date
            order by 1""",
        [horizon_days, before],
    ).fetchall()
    return [r[0] for r in rows]


def batches_to_score(
    con: duckdb.DuckDBPyConnection, as_of: date, features: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    cols = ", ".join(features)
    reader = con.execute(
        f"select visitor_id, {cols} from {FEATURES_TABLE} where as_of_date = ? order by visitor_id", [as_of]
    ).to_arrow_reader(batch_rows)
    yield from reader
