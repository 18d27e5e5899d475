"""BG/NBD's purchase probability as one of the product's features, so the product starts from what the classic
repeat-purchase model knows (on a log of orders alone it is most of what there is to know).

BG/NBD's four parameters are fitted when the model is trained, on the latest training cut-off's histories (no
label is read), and stored with the model; the feature is then a fixed function of four mart columns, the same at
training, validation, scoring and on-demand prediction, and point in time like them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import duckdb
import numpy as np

from models_py.modeling import bg_nbd
from models_py.modeling.dataset import FEATURES_TABLE, LabelledSet, to_matrix
from models_py.warehouse.connection import fetch_arrow

FEATURE = "repeat_purchase_probability"
INPUTS = ("days_since_first_event", "num_purchase_days_all", "days_since_first_transaction",
          "days_since_last_transaction")  # fmt: skip


@dataclass(frozen=True)
class RepeatPurchase:
    """A fitted BG/NBD and the horizon its probability looks ahead."""

    model: bg_nbd.BgNbd
    horizon_days: int

    def probability(self, features: list[str], x: np.ndarray) -> np.ndarray:
        rows = LabelledSet(features, np.empty(0, np.int64), x, np.empty(0, np.int8))
        return self.model.p_purchase(bg_nbd.history(rows), self.horizon_days).astype(np.float32)

    def to_dict(self) -> dict:
        return {**asdict(self.model), "horizon_days": self.horizon_days}

    @staticmethod
    def from_dict(spec: dict) -> RepeatPurchase:
        return RepeatPurchase(bg_nbd.BgNbd(*(float(spec[k]) for k in ("r", "alpha", "a", "b"))),
                              int(spec["horizon_days"]))  # fmt: skip


def fit_at(con: duckdb.DuckDBPyConnection, as_of: date, horizon_days: int, source: str = FEATURES_TABLE):
    """BG/NBD fitted on the histories of a cut-off (four columns: a large shop's are a few tens of MB)."""
    table = fetch_arrow(con, f"select visitor_id, {', '.join(INPUTS)} from {source} where as_of_date = ?", [as_of])
    rows = LabelledSet(list(INPUTS), table["visitor_id"].to_numpy(), to_matrix(table, list(INPUTS)), np.empty(0))
    return RepeatPurchase(bg_nbd.fit(bg_nbd.fitting_sample(rows)), horizon_days)


def mart_columns(model) -> list[str]:
    """The model's features that the mart holds (all but the derived one, which comes last)."""
    return [f for f in model.features if f != FEATURE]


def complete(model, x: np.ndarray) -> np.ndarray:
    """The model's matrix from the rows of its mart columns: the derived feature appended where the model has it."""
    fitted = getattr(model, "repeat_purchase", None)
    if fitted is None or FEATURE not in model.features:
        return x
    return np.column_stack([x, fitted.probability(mart_columns(model), x)]).astype(np.float32, copy=False)


def offset(features: list[str], x: np.ndarray) -> np.ndarray | None:
    """BG/NBD's log-odds, where boosting starts from: the trees learn only what it misses, so with too little data
    for more (a small shop) the product is BG/NBD rather than a noisier guess."""
    if FEATURE not in features:
        return None
    p = np.clip(x[:, features.index(FEATURE)].astype(np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).astype(np.float32)


def extended(rows: LabelledSet, fitted: RepeatPurchase) -> LabelledSet:
    """Labelled rows with the derived feature as their last column."""
    x = np.column_stack([rows.x, fitted.probability(rows.features, rows.x)]).astype(np.float32, copy=False)
    return LabelledSet([*rows.features, FEATURE], rows.visitor_id, x, rows.y)
