"""On a log of orders, the product starts from BG/NBD: its purchase probability is one of the features and its
log-odds where boosting starts, so the trees learn only what the classic repeat-purchase model misses (on such a log
it knows most of what there is to know). On a clickstream, browsing says far more than purchase history: on the
first 7 test cut-offs of the scale-1 backtest, starting from BG/NBD cost 0.005 ROC AUC on average (0.014 on one), so
a clickstream's model does without it.

BG/NBD's four parameters are fitted when the model is trained, on the latest training cut-off's histories (no
label is read), and stored with the model; the feature is then a fixed function of four mart columns, the same at
training, validation, scoring and on-demand prediction, and point in time like them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date

import duckdb
import numpy as np
from sklearn.linear_model import LogisticRegression

from models_py.modeling import bg_nbd
from models_py.modeling.dataset import FEATURES_TABLE, LabelledSet, to_matrix
from models_py.warehouse.connection import fetch_arrow

FEATURE = "repeat_purchase_probability"
INPUTS = ("days_since_first_event", "num_purchase_days_all", "days_since_first_transaction",
          "days_since_last_transaction")  # fmt: skip


@dataclass(frozen=True)
class RepeatPurchase:
    """A fitted BG/NBD, the horizon its probability looks ahead, and its log-odds mapped onto the shop's labels
    (``intercept + slope * logit(p)``, where boosting starts)."""

    model: bg_nbd.BgNbd
    horizon_days: int
    intercept: float = 0.0
    slope: float = 1.0

    def probability(self, features: list[str], x: np.ndarray) -> np.ndarray:
        return self.model.p_purchase(bg_nbd.history(features, x), self.horizon_days).astype(np.float32)

    def to_dict(self) -> dict:
        return {**asdict(self.model), "horizon_days": self.horizon_days, "intercept": self.intercept,
                "slope": self.slope}  # fmt: skip

    @staticmethod
    def from_dict(spec: dict) -> RepeatPurchase:
        return RepeatPurchase(bg_nbd.BgNbd(*(float(spec[k]) for k in ("r", "alpha", "a", "b"))),
                              int(spec["horizon_days"]), float(spec["intercept"]), float(spec["slope"]))  # fmt: skip


ORDER_LOG_PURCHASE_SHARE = 0.5  # a log whose events are mostly purchases is an order system's export


def is_order_log(con: duckdb.DuckDBPyConnection, as_of: date, source: str = FEATURES_TABLE) -> bool:
    """Whether the events before a cut-off are mostly purchases (an order system's export, not a clickstream)."""
    purchased, events = con.execute(
        f"select sum(num_purchased_items_all), sum(total_events_all) from {source} where as_of_date = ?", [as_of]
    ).fetchone()
    return bool(events) and purchased >= ORDER_LOG_PURCHASE_SHARE * events


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
    # Column-major like scoring's batches: each column is then one contiguous copy, not a transposing one.
    out = np.empty((x.shape[0], x.shape[1] + 1), np.float32, order="F")
    out[:, :-1] = x
    out[:, -1] = fitted.probability(mart_columns(model), x)
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def offset(fitted: RepeatPurchase | None, features: list[str], x: np.ndarray) -> np.ndarray | None:
    """Where boosting starts: BG/NBD's scaled log-odds. The trees learn only what it misses, so with too little data
    for more (a small shop) the product is BG/NBD rather than a noisier guess."""
    if fitted is None or FEATURE not in features:
        return None
    return (fitted.intercept + fitted.slope * _logit(x[:, features.index(FEATURE)])).astype(np.float32)


def scaled(fitted: RepeatPurchase, rows: LabelledSet, weight: np.ndarray) -> RepeatPurchase:
    """BG/NBD's log-odds mapped onto the training labels (a one-feature logistic regression): where its level or
    spread is off for the shop, boosting would otherwise spend its first trees, and its early stopping's patience,
    on correcting them."""
    z = _logit(rows.x[:, rows.features.index(FEATURE)])[:, None]
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(z, rows.y, sample_weight=weight)
    return replace(fitted, intercept=float(fit.intercept_[0]), slope=float(fit.coef_[0, 0]))


def extended(rows: LabelledSet, fitted: RepeatPurchase) -> LabelledSet:
    """Labelled rows with the derived feature as their last column."""
    x = np.column_stack([rows.x, fitted.probability(rows.features, rows.x)]).astype(np.float32, copy=False)
    return LabelledSet([*rows.features, FEATURE], rows.visitor_id, x, rows.y)
