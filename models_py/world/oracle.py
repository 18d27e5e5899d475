"""Each visitor's true probability of buying in a window, from the simulator's hidden state at the window's start.

While alive a visitor is *idle* or *in market*; with ``kappa`` the episode rate in force at the window's start
(higher once a visitor has bought: loyalty), the transient generator (per day) is
``A = [[-(kappa + mu), kappa], [eps (1 - q), -(eps + mu)]]`` and purchases leave the in-market state at rate
``eps q``. The probability of a first purchase within ``h`` days from state ``s`` is
``[integral_0^h exp(A u) du]_{s, in market} * eps q``, which for a 2x2 matrix with real eigenvalues
``l1 != l2`` is ``f0 I + f1 A`` with ``g_i = (exp(l_i h) - 1) / l_i``, ``f1 = (g1 - g2) / (l1 - l2)`` and
``f0 = (l1 g2 - l2 g1) / (l1 - l2)`` (Sylvester's formula). Exact: no Monte Carlo error.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from models_py.errors import JobFailed
from models_py.world.traffic import CALENDAR


def first_purchase_probability(
    in_market: np.ndarray,
    kappa: np.ndarray,
    eps: np.ndarray,
    q: np.ndarray,
    mu: np.ndarray,
    horizon_days: float,
) -> np.ndarray:
    a = -(kappa + mu)
    b = kappa
    c = eps * (1.0 - q)
    d = -(eps + mu)
    disc = np.sqrt((a - d) ** 2 + 4.0 * b * c)
    disc = np.maximum(disc, 1e-9)  # equal eigenvalues only in a measure-zero corner; keep it finite
    l1 = 0.5 * (a + d + disc)
    l2 = 0.5 * (a + d - disc)

    def g(lam: np.ndarray) -> np.ndarray:
        return np.expm1(lam * horizon_days) / lam

    g1, g2 = g(l1), g(l2)
    f1 = (g1 - g2) / (l1 - l2)
    f0 = (l1 * g2 - l2 * g1) / (l1 - l2)
    exit_rate = eps * q
    from_idle = f1 * b * exit_rate
    from_market = (f0 + f1 * d) * exit_rate
    return np.clip(np.where(in_market, from_market, from_idle), 0.0, 1.0)


def hidden_state(truth_dir: Path, as_of: date) -> pa.Table:
    """Every visitor seen before ``as_of`` with its latent state at the cut-off: the oracle's inputs."""
    cutoff = CALENDAR.day_start_ms(as_of)
    visitors = ds.dataset(sorted(truth_dir.glob("visitors_*.parquet"))).to_table(
        filter=pc.field("arrived_at_ms") < cutoff
    )
    episodes = ds.dataset(sorted(truth_dir.glob("episodes_*.parquet")))
    open_episodes = episodes.to_table(
        columns=["visitor_id"],
        filter=(pc.field("started_at_ms") <= cutoff) & (pc.field("ended_at_ms") > cutoff),
    )
    purchases = episodes.to_table(
        columns=["visitor_id"],
        filter=pc.field("ended_in_purchase") & (pc.field("ended_at_ms") <= cutoff),
    )
    vid = visitors["visitor_id"].to_numpy()
    # A first purchase makes a visitor a customer, with its own (higher) rate of new episodes.
    customer = np.isin(vid, purchases["visitor_id"].to_numpy())
    return pa.table(
        {
            "visitor_id": vid,
            "alive": visitors["churned_at_ms"].to_numpy() > cutoff,
            "in_market": np.isin(vid, open_episodes["visitor_id"].to_numpy()),
            "episode_rate": np.where(
                customer, visitors["episode_rate_customer"].to_numpy(), visitors["episode_rate_new"].to_numpy()
            ),
            "episode_end_rate": visitors["episode_end_rate"],
            "conversion": visitors["conversion"],
            "churn_rate": visitors["churn_rate"],
        }
    )


def true_probabilities(truth_dir: Path, as_of: date, horizon_days: int = 7) -> pa.Table:
    """``(visitor_id, as_of_date, horizon_days, true_probability)`` for every visitor seen before ``as_of``."""
    state = hidden_state(truth_dir, as_of)
    p = first_purchase_probability(
        state["in_market"].to_numpy(),
        state["episode_rate"].to_numpy(),
        state["episode_end_rate"].to_numpy(),
        state["conversion"].to_numpy(),
        state["churn_rate"].to_numpy(),
        float(horizon_days),
    )
    p = np.where(state["alive"].to_numpy(), p, 0.0)
    n = state.num_rows
    return pa.table(
        {
            "visitor_id": state["visitor_id"],
            "as_of_date": pa.array([as_of] * n, pa.date32()) if n else pa.array([], pa.date32()),
            "horizon_days": pa.array(np.full(n, horizon_days, np.int32)),
            "true_probability": p,
        }
    )


def has_truth(truth_dir: Path) -> bool:
    """Whether a folder holds the simulator's truth (a real shop's data folder does not)."""
    return truth_dir.is_dir() and any(truth_dir.glob("visitors_*.parquet"))


def truth_for(truth_dir: Path, visitor_id: np.ndarray, as_of: date, horizon_days: int) -> np.ndarray:
    """The true probability of each of these visitors at a cut-off, in their order."""
    truth = true_probabilities(truth_dir, as_of, horizon_days)
    ids = truth["visitor_id"].to_numpy()
    order = np.argsort(ids)
    pos = np.minimum(np.searchsorted(ids, visitor_id, sorter=order), len(ids) - 1)
    found = ids[order[pos]] == visitor_id
    if not found.all():
        raise JobFailed(
            f"the simulator's truth lacks {int((~found).sum())} visitors scored at {as_of}: "
            "were the landing files and data/truth written by the same `propensity simulate` run?"
        )
    return truth["true_probability"].to_numpy()[order[pos]]
