"""A population's profile, feature by feature, and how far another population has moved from it (PSI).

Missing and zero are bins of their own; the non-zero values are cut at the reference's deciles. Most activity
features are zero for most visitors: plain quantile bins would put them all in one bin and see nothing when the
active few change, or when every value drops to zero.
"""

from __future__ import annotations

import numpy as np

BINS = 10
EPS = 1e-4  # an empty bin would make the PSI infinite


def edges_of(reference: np.ndarray) -> list[float]:
    """Cut points between the reference's non-zero deciles."""
    nonzero = reference[~np.isnan(reference) & (reference != 0)]
    if not nonzero.size:
        return []
    return [float(e) for e in np.unique(np.quantile(nonzero, np.linspace(0, 1, BINS + 1)[1:-1]))]


def shares(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Share of the values that are missing, zero, and in each bin between the edges."""
    missing = np.isnan(values)
    zero = values == 0
    rest = values[~missing & ~zero]
    counts = np.concatenate(
        [[missing.sum(), zero.sum()], np.bincount(np.searchsorted(edges, rest, side="right"), minlength=len(edges) + 1)]
    )
    return counts / max(values.size, 1)


def psi(reference_shares: list[float] | np.ndarray, current_shares: np.ndarray) -> float:
    """Population stability index: sum over bins of (current - reference) * ln(current / reference)."""
    r, c = np.maximum(np.asarray(reference_shares), EPS), np.maximum(np.asarray(current_shares), EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def column(x: np.ndarray, j: int) -> np.ndarray:
    """Column j of a feature matrix, contiguous (a column-major matrix's as it is). Training's matrices and the drift
    sample are row-major, and the masks and comparisons above over a strided column took over twice as long as a
    copy of it and the same work (the profile of scale 1's 1.27M validation rows: 2.7 s against 1.2 s, the same
    profile)."""
    return np.ascontiguousarray(x[:, j])


def profile(x: np.ndarray, features: list[str]) -> dict[str, dict]:
    """Per feature: its bin edges and the share of rows in each bin."""
    out = {}
    for j, name in enumerate(features):
        values = column(x, j)
        edges = edges_of(values)
        out[name] = {"edges": edges, "shares": [float(s) for s in shares(values, edges)]}
    return out
