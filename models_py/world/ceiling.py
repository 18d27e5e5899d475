"""How much of the oracle's lead behaviour could close: the product's model retrained with parts of the simulator's
hidden state as extra features, on the same cut-offs and by the same rules, next to the oracle.

A diagnostic of the simulated shop only (the hidden state is the simulator's); nothing here reaches the scores.
If the model given some hidden variable gains little, the events already reveal it; if it gains a lot, no feature
built from the events can stand in for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from models_py.config import Settings
from models_py.errors import BadInputError
from models_py.modeling import evaluate
from models_py.modeling.dataset import FEATURES_TABLE, labelled, labelled_dates, product_features
from models_py.modeling.model import probabilities
from models_py.modeling.train import fit, split_dates
from models_py.world import oracle

HIDDEN = ("in_market", "alive", "conversion", "episode_rate")
HIDDEN_VIEW = "features_with_hidden_state"


def variants() -> dict[str, tuple[str, ...]]:
    """The product's features alone, plus each hidden variable in turn, plus all of them."""
    return {"product": (), **{f"+{h}": (h,) for h in HIDDEN}, "+all_hidden": HIDDEN}


def _attach_hidden_state(con: duckdb.DuckDBPyConnection, truth_dir: Path, dates: list[date]) -> list[str]:
    """A temporary view of the features mart with the hidden state of each visitor at each cut-off."""
    tables = []
    for day in dates:
        state = oracle.hidden_state(truth_dir, day).select(["visitor_id", *HIDDEN])
        tables.append(state.append_column("as_of_date", pa.array([day] * state.num_rows, pa.date32())))
    con.register("hidden_state_rows", pa.concat_tables(tables))
    columns = [f"hidden_{h}" for h in HIDDEN]
    select = ", ".join(f"cast(h.{h} as double) as hidden_{h}" for h in HIDDEN)
    con.execute(
        f"""create or replace temp view {HIDDEN_VIEW} as
            select f.*, {select}
            from {FEATURES_TABLE} f
            left join hidden_state_rows h on f.as_of_date = h.as_of_date and f.visitor_id = h.visitor_id"""
    )
    return columns


def run(
    con: duckdb.DuckDBPyConnection,
    cfg: Settings,
    test_date: date,
    truth_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """ROC AUC on ``test_date`` of every variant and of the oracle; training and choices as in the backtest."""
    truth_dir = truth_dir or cfg.truth_dir
    if not oracle.has_truth(truth_dir):
        raise BadInputError(f"no simulator truth in {truth_dir}: the ceiling needs the simulated shop")
    features = product_features(con)
    train_dates, validation_date = split_dates(labelled_dates(con, test_date, cfg), cfg.training_cutoffs)
    hidden_columns = _attach_hidden_state(con, truth_dir, [*train_dates, validation_date, test_date])
    test = labelled(con, [test_date], [*features, *hidden_columns], source=HIDDEN_VIEW)
    truth = oracle.truth_for(truth_dir, test.visitor_id, test_date, cfg.horizon_days)
    oracle_auc = evaluate.metrics(test.y, truth, 0.5)["roc_auc"]
    results = {}
    for name, hidden in variants().items():
        columns = [*features, *(f"hidden_{h}" for h in hidden)]
        model = fit(con, train_dates, validation_date, columns, cfg, source=HIDDEN_VIEW)
        p = probabilities(model, test.x[:, [test.features.index(c) for c in columns]], cfg.threads)
        auc = evaluate.metrics(test.y, p, 0.5)["roc_auc"]
        results[name] = {"roc_auc": auc, "auc_to_oracle": auc / oracle_auc}
        if progress:
            progress(f"{name:>14}: ROC AUC {auc:.4f} ({auc / oracle_auc:.3f} of the oracle)")
    return {
        "as_of_date": test_date.isoformat(),
        "training_as_of_dates": [d.isoformat() for d in train_dates],
        "validation_as_of_date": validation_date.isoformat(),
        "visitors": int(test.y.size),
        "buyers": int(test.y.sum()),
        "oracle_roc_auc": oracle_auc,
        "variants": results,
    }
