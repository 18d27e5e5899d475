"""Out-of-time backtest: the product's model, the seed's models and simple heuristics on the same weekly cut-offs.

For a test cut-off ``t`` every choice (trees, early stopping, calibration, threshold) is made with labels that are
complete by ``t``: the latest such cut-off validates, the ones before it train. The test labels are only ever read
to compute the metrics, with one deliberate exception: ``seed_v2_test_tuned`` re-enacts the seed's mistake of
picking its threshold on the test set, so the table can show what that mistake was worth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve, roc_curve

from models_py import evaluate, oracle
from models_py.calibration import IsotonicCalibration
from models_py.features import SEED_FEATURES, LabelledSet, labelled, labelled_dates, product_features
from models_py.train import PARAMS, TrainingError, fit, split_dates

MODELS = ("product", "seed_v2", "seed_v2_test_tuned", "seed_v1", "recency", "cart_heuristic", "oracle")
SUMMARY_METRICS = (
    "roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1", "threshold",
    "precision_at_1pct", "precision_at_5pct", "precision_at_10pct", "lift_top_decile", "oracle_roc_auc",
    "auc_to_oracle",
)  # fmt: skip

# The seed's V2, exactly as published: XGBClassifier(objective='binary:logistic', scale_pos_weight=neg/pos,
# learning_rate=0.05, n_estimators=500, max_depth=4, subsample=0.8, colsample_bytree=0.8, gamma=0.1).
SEED_V2_PARAMS = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "learning_rate": 0.05,
    "max_depth": 4,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "gamma": 0.1,
    "seed": 0,
}
SEED_V2_ROUNDS = 500
# The seed's V1 scored visitors from global (lifetime) aggregates with a class-balanced linear model.
SEED_V1_FEATURES = ("total_events_all", "num_views_all", "num_addtocart_all", "num_unique_items_all")


@dataclass
class Prediction:
    """One model's probabilities on the test cut-off and the threshold it decided with."""

    p: np.ndarray
    threshold: float


def backtest_dates(con: duckdb.DuckDBPyConnection, horizon_days: int, training_cutoffs: int) -> list[date]:
    """Every cut-off with complete labels that has at least one training and one validation cut-off before it."""
    complete = labelled_dates(con, date.max, horizon_days)
    out = []
    for t in complete:
        try:
            split_dates(labelled_dates(con, t, horizon_days), training_cutoffs)
        except TrainingError:
            continue
        out.append(t)
    return out


def _seed_v2(train: LabelledSet, threads: int) -> xgb.Booster:
    cols = [train.features.index(f) for f in SEED_FEATURES]
    positives = max(int(train.y.sum()), 1)
    params = {**SEED_V2_PARAMS, "scale_pos_weight": (len(train.y) - positives) / positives, "nthread": threads}
    dm = xgb.DMatrix(train.x[:, cols], label=train.y, feature_names=list(SEED_FEATURES), nthread=threads)
    return xgb.train(params, dm, num_boost_round=SEED_V2_ROUNDS)


def _seed_v2_predict(booster: xgb.Booster, rows: LabelledSet, threads: int) -> np.ndarray:
    cols = [rows.features.index(f) for f in SEED_FEATURES]
    return booster.predict(xgb.DMatrix(rows.x[:, cols], feature_names=list(SEED_FEATURES), nthread=threads))


def _column(rows: LabelledSet, name: str) -> np.ndarray:
    return rows.x[:, rows.features.index(name)].astype(np.float64)


def _seed_v1_inputs(rows: LabelledSet) -> np.ndarray:
    return np.log1p(np.nan_to_num(np.column_stack([_column(rows, f) for f in SEED_V1_FEATURES])))


def _calibrated_rule(raw_val: np.ndarray, val: LabelledSet, raw_test: np.ndarray) -> Prediction:
    """A heuristic's score mapped to a probability and a threshold on the validation cut-off."""
    calibration = IsotonicCalibration.fit(raw_val, val.y)
    p_val = calibration.apply(raw_val)
    return Prediction(calibration.apply(raw_test), evaluate.best_f1_threshold(val.y, p_val))


def oracle_scores(truth_dir: Path, rows: LabelledSet, as_of: date, horizon_days: int) -> np.ndarray | None:
    """The simulator's true probability for each row, or None for a shop without truth (the real file)."""
    if not truth_dir.is_dir() or not any(truth_dir.glob("visitors_*.parquet")):
        return None
    truth = oracle.true_probabilities(truth_dir, as_of, horizon_days)
    ids = truth["visitor_id"].to_numpy()
    order = np.argsort(ids)
    pos = np.searchsorted(ids, rows.visitor_id, sorter=order)
    pos = np.minimum(pos, len(ids) - 1)
    found = ids[order[pos]] == rows.visitor_id
    if not found.all():
        raise RuntimeError(
            f"the simulator's truth lacks {int((~found).sum())} visitors scored at {as_of}: "
            "were the landing files and data/truth written by the same `propensity simulate` run?"
        )
    return truth["true_probability"].to_numpy()[order[pos]]


def predict_cutoff(
    con: duckdb.DuckDBPyConnection,
    test_date: date,
    horizon_days: int,
    training_cutoffs: int,
    truth_dir: Path,
    threads: int,
    max_negatives: int,
) -> tuple[LabelledSet, dict[str, Prediction]]:
    """Every model's probabilities for the visitors of one test cut-off, each decided without its labels."""
    features = product_features(con)
    train_dates, validation_date = split_dates(labelled_dates(con, test_date, horizon_days), training_cutoffs)
    test = labelled(con, [test_date], features)
    val = labelled(con, [validation_date], features)
    # The seed trained on a single cut-off: the latest one whose labels end before the validation cut-off.
    seed_train = labelled(con, [train_dates[-1]], features)
    out: dict[str, Prediction] = {}

    booster, calibration, threshold, _ = fit(
        con, train_dates, validation_date, features, PARAMS, threads, max_negatives
    )
    raw = booster.predict(xgb.DMatrix(test.x, feature_names=features, nthread=threads))
    out["product"] = Prediction(calibration.apply(raw), threshold)

    seed = _seed_v2(seed_train, threads)
    p_val, p_test = _seed_v2_predict(seed, val, threads), _seed_v2_predict(seed, test, threads)
    out["seed_v2"] = Prediction(p_test, evaluate.best_f1_threshold(val.y, p_val))
    out["seed_v2_test_tuned"] = Prediction(p_test, evaluate.best_f1_threshold(test.y, p_test))

    v1 = LogisticRegression(class_weight="balanced", max_iter=1000).fit(_seed_v1_inputs(seed_train), seed_train.y)
    p_val = v1.predict_proba(_seed_v1_inputs(val))[:, 1]
    out["seed_v1"] = Prediction(v1.predict_proba(_seed_v1_inputs(test))[:, 1], evaluate.best_f1_threshold(val.y, p_val))

    # Recency: the more recent the last event, the likelier the purchase.
    def recency(rows: LabelledSet) -> np.ndarray:
        return -_column(rows, "hours_since_last_event")

    # Cart rule: an add-to-cart in the last 7 days not followed by a purchase of that item.
    def open_cart(rows: LabelledSet) -> np.ndarray:
        return (_column(rows, "num_open_carts_7d") > 0).astype(np.float64)

    out["recency"] = _calibrated_rule(recency(val), val, recency(test))
    out["cart_heuristic"] = _calibrated_rule(open_cart(val), val, open_cart(test))

    truth_test = oracle_scores(truth_dir, test, test_date, horizon_days)
    if truth_test is not None:
        truth_val = oracle_scores(truth_dir, val, validation_date, horizon_days)
        out["oracle"] = Prediction(truth_test, evaluate.best_f1_threshold(val.y, truth_val))
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


def run(
    con: duckdb.DuckDBPyConnection,
    horizon_days: int,
    training_cutoffs: int,
    truth_dir: Path,
    threads: int,
    max_negatives: int,
    last: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The backtest summary: per model, metrics per test cut-off and their mean and sd, plus the latest curves."""
    dates = backtest_dates(con, horizon_days, training_cutoffs)
    if last:
        dates = dates[-last:]
    if not dates:
        raise TrainingError(
            "no cut-off has both complete labels and two labelled cut-offs before it: "
            "a backtest needs at least three weekly cut-offs with complete labels"
        )
    per_model: dict[str, list[dict]] = {}
    latest_curves: dict[str, dict] = {}
    for i, test_date in enumerate(dates, 1):
        test, predictions = predict_cutoff(
            con, test_date, horizon_days, training_cutoffs, truth_dir, threads, max_negatives
        )
        rows = {name: evaluate.metrics(test.y, pred.p, pred.threshold) for name, pred in predictions.items()}
        oracle_auc = rows["oracle"]["roc_auc"] if "oracle" in rows else None
        for name, m in rows.items():
            m["oracle_roc_auc"] = oracle_auc
            m["auc_to_oracle"] = m["roc_auc"] / oracle_auc if oracle_auc else None
            per_model.setdefault(name, []).append({"as_of_date": test_date.isoformat(), **m})
        if test_date == dates[-1]:
            latest_curves = {name: curves(test.y, pred.p) for name, pred in predictions.items()}
        if progress:
            progress(
                f"[{i}/{len(dates)}] {test_date}: {len(test.y):,} visitors, {int(test.y.sum()):,} buyers; ROC AUC "
                + ", ".join(f"{name} {m['roc_auc']:.3f}" for name, m in rows.items() if name != "seed_v2_test_tuned")
            )
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
        "cutoffs": [d.isoformat() for d in dates],
        "horizon_days": horizon_days,
        "training_cutoffs": training_cutoffs,
        "models": models,
        "curves_as_of_date": dates[-1].isoformat(),
        "curves": latest_curves,
    }


def _agg(table: list[dict], key: str, fn: Callable[[np.ndarray], float]) -> float | None:
    values = np.array([r[key] for r in table if r.get(key) is not None], dtype=np.float64)
    return float(fn(values)) if values.size else None


def store(con: duckdb.DuckDBPyConnection, run_id: str, summary: dict) -> None:
    """Every per-cut-off number in a long table analysts can query (ml.backtest_metrics)."""
    con.execute(
        """create table if not exists ml.backtest_metrics (
               run_id varchar, model varchar, as_of_date date, metric varchar, value double)"""
    )
    rows = [
        (run_id, model, r["as_of_date"], metric, r[metric])
        for model, body in summary["models"].items()
        for r in body["per_cutoff"]
        for metric in SUMMARY_METRICS
        if r.get(metric) is not None
    ]
    con.execute("delete from ml.backtest_metrics where run_id = ?", [run_id])
    con.executemany("insert into ml.backtest_metrics values (?, ?, ?::date, ?, ?)", rows)
