"""BG/NBD, the backtest's repeat-purchase baseline: it must recover a known population and predict its future."""

from __future__ import annotations

import numpy as np

from models_py.modeling import bg_nbd

TRUE = bg_nbd.BgNbd(r=0.8, alpha=12.0, a=0.7, b=2.5)


def simulate(n: int, horizon: float, seed: int = 3) -> tuple[bg_nbd.History, np.ndarray]:
    """Customers drawn from the BG/NBD process itself: their history up to their age T, and whether they buy in
    the ``horizon`` days after it."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE.r, 1 / TRUE.alpha, n)
    dropout = rng.beta(TRUE.a, TRUE.b, n)
    age = rng.uniform(30, 300, n)
    now, x, t_x = np.zeros(n), np.zeros(n), np.zeros(n)
    alive, buys_later = np.ones(n, bool), np.zeros(n, bool)
    while alive.any():
        now = now + rng.exponential(1 / rate)
        in_history = alive & (now <= age)
        buys_later |= alive & (now > age) & (now <= age + horizon)
        x += in_history
        t_x = np.where(in_history, now, t_x)
        alive = in_history & (rng.random(n) >= dropout)
    return bg_nbd.History(x=x, t_x=t_x, age=age), buys_later


def test_the_fit_recovers_the_population_it_was_drawn_from() -> None:
    history, _ = simulate(40_000, 7)
    fitted = bg_nbd.fit(history)
    for name in ("r", "alpha", "a", "b"):
        assert abs(getattr(fitted, name) / getattr(TRUE, name) - 1) < 0.2, (name, fitted)
    assert bg_nbd.log_likelihood(fitted, history) >= bg_nbd.log_likelihood(TRUE, history)


def test_the_predicted_purchase_probability_matches_what_happens_next() -> None:
    history, buys_later = simulate(40_000, 30, seed=5)
    p = bg_nbd.fit(history).p_purchase(history, 30)
    assert abs(p.mean() - buys_later.mean()) < 0.01
    # By decile of the prediction, the observed rate follows it (the ranking carries information).
    order = np.argsort(p)
    observed = [buys_later[part].mean() for part in np.array_split(order, 10)]
    predicted = [p[part].mean() for part in np.array_split(order, 10)]
    assert np.allclose(observed, predicted, atol=0.03)
    assert observed[-1] > 5 * max(observed[0], 1e-3)


def test_a_first_purchase_on_the_first_day_is_the_birth_not_a_repeat() -> None:
    # Mart columns at a cut-off: a buyer on its first day (order-system log), a repeat buyer, a visitor who never
    # bought, and one who first bought days after arriving (a clickstream).
    names = ["days_since_first_event", "num_purchase_days_all", "days_since_first_transaction",
             "days_since_last_transaction"]  # fmt: skip
    x = np.array(
        [[40.2, 1, 40.2, 40.2], [40.2, 3, 40.2, 5.5], [12.5, 0, np.nan, np.nan], [20.3, 2, 15.1, 3.4]], np.float32
    )
    h = bg_nbd.history(names, x)
    assert h.x.tolist() == [0, 2, 0, 2]
    assert np.allclose(h.t_x, [0, 40.2 - 5.5, 0, 20.3 - 3.4], atol=1e-4)
    assert np.allclose(h.age, [40.2, 40.2, 12.5, 20.3], atol=1e-4)
