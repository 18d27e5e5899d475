"""Metrics that say how good a propensity is: ranking, calibration, and what targeting the top buys you."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate - mean predicted| over equal-count bins of the prediction.

    Equal-count bins, because with a 0.1% base rate equal-width bins put almost every visitor in the first bin.
    """
    order = np.argsort(p, kind="stable")
    err = 0.0
    for chunk in np.array_split(order, bins):
        if chunk.size:
            err += chunk.size * abs(y[chunk].mean() - p[chunk].mean())
    return float(err / max(len(p), 1))


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score threshold maximising F1 (computed in one sort, no loop over candidates)."""
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    f1 = 2 * tp / (k + ys.sum())
    last_of_tie = np.r_[ps[1:] != ps[:-1], True]
    f1 = np.where(last_of_tie, f1, -1)
    return float(ps[int(np.argmax(f1))])


def precision_at(y: np.ndarray, p: np.ndarray, share: float) -> float:
    k = max(1, int(round(share * len(p))))
    top = np.argsort(-p, kind="stable")[:k]
    return float(y[top].mean())


def decile_lift(y: np.ndarray, p: np.ndarray) -> list[float]:
    """Buy rate of each tenth of visitors (highest scores first) over the overall rate."""
    order = np.argsort(-p, kind="stable")
    base = max(y.mean(), 1e-12)
    return [float(y[c].mean() / base) for c in np.array_split(order, 10)]


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    y = y.astype(np.int8)
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    pred = p >= threshold
    tp = float((pred & (y == 1)).sum())
    precision = tp / max(pred.sum(), 1)
    recall = tp / max((y == 1).sum(), 1)
    both = y.min() != y.max()
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "precision_at_1pct": precision_at(y, p, 0.01),
        "precision_at_5pct": precision_at(y, p, 0.05),
        "precision_at_10pct": precision_at(y, p, 0.10),
        "lift_top_decile": decile_lift(y, p)[0],
        "base_rate": float(y.mean()),
        "rows": float(len(y)),
    }
