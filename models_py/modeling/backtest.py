"""Out-of-time backtest: the product's model, the seed's models, BG/NBD and simple heuristics on the same cut-offs.

For a test cut-off ``t`` every choice (trees, early stopping, calibration, threshold) is made with labels that are
complete by ``t``: the latest such cut-off validates, the ones before it train. The test labels are only ever read
to compute the metrics, with one deliberate exception: ``seed_v2_test_tuned`` re-enacts the seed's mistake of
picking its threshold on the test set, so the table can show what that mistake was worth. A simulated shop also
passes its oracle (each visitor's true probability), the ceiling no model can beat on average.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import duckdb
import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from models_py.config import Settings
from models_py.errors import BadInputError
from models_py.modeling import baselines, evaluate
from models_py.modeling.baselines import Prediction
from models_py.modeling.dataset import SEED_FEATURES, LabelledSet, labelled, labelled_dates, product_features
from models_py.modeling.model import probabilities
from models_py.modeling.train import TrainingError, fit, split_dates

MODELS = (
    "product", "product_14_features", "seed_v2", "seed_v2_test_tuned", "seed_v1", "bg_nbd", "rfm_gbm", "recency",
    "cart_heuristic", "oracle",
)  # fmt: skip
SUMMARY_METRICS = (
    "roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1", "threshold",
    "precision_at_1pct", "precision_at_5pct", "precision_at_10pct", "lift_top_decile", "oracle_roc_auc",
    "auc_to_oracle",
)  # fmt: skip

# The simulator's true probabilities of given visitors at a cut-off (absent for a real shop).
Oracle = Callable[[np.ndarray, date], np.ndarray]


def testable_dates(con: duckdb.DuckDBPyConnection, cfg: Settings) -> list[date]:
    """Every date with complete labels (on the spine or chosen off it) that has at least one training and one
    validation spine cut-off before it."""
    complete = labelled_dates(con, date.max, cfg, spine_only=False)
    out = []
    for t in complete:
        try:
            split_dates(labelled_dates(con, t, cfg), cfg.training_cutoffs)
        except TrainingError:
            continue
        out.append(t)
    return out


def backtest_dates(con: duckdb.DuckDBPyConnection, cfg: Settings, chosen: list[date] | None = None) -> list[date]:
    """The test cut-offs: the chosen ones, or every testable one, never a development cut-off (design choices were
    tried there, so a score on it would flatter the product)."""
    testable = testable_dates(con, cfg)
    reserved = set(cfg.development_cutoffs)
    if not chosen:
        return [d for d in testable if cfg.on_spine(d) and d not in reserved]
    problems = [f"{d} is a development cut-off (PROPENSITY_DEVELOPMENT_CUTOFFS)" for d in chosen if d in reserved]
    problems += [
        f"{d} has no complete labels or too little labelled history before it" for d in chosen if d not in testable
    ]
    if problems:
        raise BadInputError("cannot test on the chosen cut-offs: " + "; ".join(problems))
    return sorted(set(chosen))


def predict_cutoff(
    con: duckdb.DuckDBPyConnection, test_date: date, cfg: Settings, oracle: Oracle | None
) -> tuple[LabelledSet, dict[str, Prediction]]:
    """Every model's probabilities for the visitors of one test cut-off, each decided without its labels."""
    features = product_features(con)
    train_dates, validation_date = split_dates(labelled_dates(con, test_date, cfg), cfg.training_cutoffs)
    test = labelled(con, [test_date], features)
    val = labelled(con, [validation_date], features)
    # The seed trained on a single cut-off: the latest one whose labels end before the validation cut-off.
    seed_train = labelled(con, [train_dates[-1]], features)

    product = fit(con, train_dates, validation_date, features, cfg, companion_features=list(SEED_FEATURES))
    out = {"product": Prediction(probabilities(product, test.x, cfg.threads), product.threshold)}
    # The companion that answers the original API's 14-feature payload, tested like the product.
    companion = product.companion
    columns = [features.index(f) for f in companion.features]
    out["product_14_features"] = Prediction(probabilities(companion, test.x[:, columns], cfg.threads),
                                            companion.threshold)  # fmt: skip
    out.update(baselines.seed_v2(seed_train, val, test, cfg.threads))
    out["seed_v1"] = baselines.seed_v1(seed_train, val, test)
    out["bg_nbd"] = baselines.repeat_purchase(val, test, cfg.horizon_days)
    rfm = fit(con, train_dates, validation_date, list(baselines.RFM_FEATURES), cfg)
    rfm_columns = [features.index(f) for f in rfm.features]
    out["rfm_gbm"] = Prediction(probabilities(rfm, test.x[:, rfm_columns], cfg.threads), rfm.threshold)
    out["recency"] = baselines.recency(val, test)
    out["cart_heuristic"] = baselines.open_cart(val, test)
    if oracle is not None:
        truth_val = oracle(val.visitor_id, validation_date)
        out["oracle"] = Prediction(oracle(test.visitor_id, test_date), evaluate.best_f1_threshold(val.y, truth_val))
    return test, out


def curves(y: np.ndarray, p: np.ndarray, points: int = 200) -> dict[str, list[float]]:
    """ROC, PR, reliability, precision-at-k and decile lift, thinned to a few hundred points for plotting."""
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    # A fixed grid, dense where targeting happens (the first few % of visitors), rather than every threshold.
    grid = np.unique(np.concatenate([[0.0], np.geomspace(1e-5, 1.0, points)]))
    roc_x, roc_y = grid, np.interp(grid, fpr, tpr)
    pr_x, pr_y = grid, np.interp(grid, recall[::-1], precision[::-1])
    order = np.argsort(p, kind="stable")
    bins = [c for c in np.array_split(order, 10) if c.size]
    shares = np.geomspace(0.001, 1.0, 40)
    return {
        "roc_fpr": [float(v) for v in roc_x],
        "roc_tpr": [float(v) for v in roc_y],
        "pr_recall": [float(v) for v in pr_x],
        "pr_precision": [float(v) for v in pr_y],
        "reliability_predicted": [float(p[c].mean()) for c in bins],
        "reliability_observed": [float(y[c].mean()) for c in bins],
        "precision_at_share": [float(s) for s in shares],
        "precision_at_k": [evaluate.precision_at(y, p, float(s)) for s in shares],
        "decile_lift": evaluate.decile_lift(y, p),
    }


def metrics_against_oracle(y: np.ndarray, predictions: dict[str, Prediction]) -> dict[str, dict]:
    """Every model's metrics on one test cut-off, with its ROC AUC as a share of the oracle's where there is one."""
    rows = {name: evaluate.metrics(y, pred.p, pred.threshold) for name, pred in predictions.items()}
    oracle_auc = rows["oracle"]["roc_auc"] if "oracle" in rows else None
    for m in rows.values():
        m["oracle_roc_auc"] = oracle_auc
        m["auc_to_oracle"] = m["roc_auc"] / oracle_auc if oracle_auc else None
    return rows


def run(
    con: duckdb.DuckDBPyConnection,
    cfg: Settings,
    oracle: Oracle | None,
    last: int | None = None,
    progress: Callable[[str], None] | None = None,
    chosen: list[date] | None = None,
) -> dict:
    """The backtest summary: per model, metrics per test cut-off and their mean and sd, plus the latest curves."""
    dates = backtest_dates(con, cfg, chosen)
    if last:
        dates = dates[-last:]
    if not dates:
        raise TrainingError(
            "no cut-off has both complete labels and two labelled cut-offs before it: a backtest needs at least three"
            f" spine cut-offs with complete labels, besides the development ones ({_dates(cfg.development_cutoffs)})"
        )
    per_model: dict[str, list[dict]] = {}
    skipped: list[dict] = []
    for i, test_date in enumerate(dates, 1):
        try:
            test, predictions = predict_cutoff(con, test_date, cfg, oracle)
        except TrainingError as exc:
            # Too little history (a young shop): no model is scored there, so every row compares the same dates.
            skipped.append({"as_of_date": test_date.isoformat(), "reason": str(exc)})
            if progress:
                progress(f"[{i}/{len(dates)}] {test_date}: skipped, the product could not be trained: {exc}")
            continue
        rows = metrics_against_oracle(test.y, predictions)
        for name, m in rows.items():
            per_model.setdefault(name, []).append({"as_of_date": test_date.isoformat(), **m})
        latest = (test_date, test, predictions)
        if progress:
            progress(
                f"[{i}/{len(dates)}] {test_date}: {len(test.y):,} visitors, {int(test.y.sum()):,} buyers; ROC AUC "
                + ", ".join(f"{name} {m['roc_auc']:.3f}" for name, m in rows.items() if name != "seed_v2_test_tuned")
            )
    if not per_model:
        raise TrainingError(f"no test cut-off could be evaluated: {skipped[-1]['reason']}")
    curves_date, test, predictions = latest  # the curves of the latest cut-off evaluated
    models = {}
    for name in MODELS:
        if name not in per_model:
            continue
        table = per_model[name]
        models[name] = {
            "mean": {k: _agg(table, k, np.mean) for k in SUMMARY_METRICS},
            "sd": {k: _agg(table, k, lambda v: np.std(v, ddof=1) if len(v) > 1 else 0.0) for k in SUMMARY_METRICS},
            "per_cutoff": table,
        }
    return {
        "cutoffs": [d.isoformat() for d in dates if d.isoformat() not in {s["as_of_date"] for s in skipped}],
        "skipped_cutoffs": skipped,
        "development_cutoffs": [d.isoformat() for d in cfg.development_cutoffs],
        "horizon_days": cfg.horizon_days,
        "training_cutoffs": cfg.training_cutoffs,
        "models": models,
        "curves_as_of_date": curves_date.isoformat(),
        "curves": {name: curves(test.y, pred.p) for name, pred in predictions.items()},
    }


def _dates(dates: tuple[date, ...]) -> str:
    return ", ".join(map(str, dates)) or "none"


def _agg(table: list[dict], key: str, fn: Callable[[np.ndarray], float]) -> float | None:
    values = np.array([r[key] for r in table if r.get(key) is not None], dtype=np.float64)
    return float(fn(values)) if values.size else None


def store(con: duckdb.DuckDBPyConnection, run_id: str, summary: dict) -> None:
    """Every per-cut-off number in a long table analysts can query (ml.backtest_metrics)."""
    rows = [
        (run_id, model, r["as_of_date"], metric, r[metric])
        for model, body in summary["models"].items()
        for r in body["per_cutoff"]
        for metric in SUMMARY_METRICS
        if r.get(metric) is not None
    ]
    con.execute("delete from ml.backtest_metrics where run_id = ?", [run_id])
    con.executemany("insert into ml.backtest_metrics values (?, ?, ?::date, ?, ?)", rows)
