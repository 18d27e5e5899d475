"""BG/NBD (Fader, Hardie & Lee, 2005), the classic repeat-purchase model, fitted here by maximum likelihood.

While "alive" a customer buys at a Poisson rate lambda ~ Gamma(r, alpha) and after each purchase drops out for good
with probability p ~ Beta(a, b). From each visitor's history (x repeat purchase days, t_x the age of the last one,
T the visitor's age, in days since the first event) it gives the probability of at least one purchase in the next
h days: P(alive | x, t_x, T) * (1 - ((alpha + T) / (alpha + T + h)) ** (r + x)), since an alive customer's rate has
the posterior Gamma(r + x, alpha + T) and nobody drops out between purchases.

A visitor's birth is its first event: on a log of orders only that is its first purchase (the textbook setting);
on a clickstream a visitor who has not bought yet is a customer with x = 0. Fitting reads no label, only the history
before the cut-off, so the model may be fitted on the very cut-off it predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

from models_py.modeling.dataset import LabelledSet, hash_unit

FIT_ROWS = 200_000  # the likelihood of a hash sample: four parameters need far fewer rows than a big shop has


@dataclass(frozen=True)
class History:
    """Per visitor, in days: repeat purchase days, age of the last one since the first event, age at the cut-off."""

    x: np.ndarray
    t_x: np.ndarray
    age: np.ndarray


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, h: History) -> np.ndarray:
        return np.exp(_log_no_dropout(self, h) - _log_likelihood_tail(self, h))

    def p_purchase(self, h: History, horizon_days: float) -> np.ndarray:
        """P(at least one purchase within ``horizon_days`` after the cut-off)."""
        stays_quiet = np.exp((self.r + h.x) * np.log((self.alpha + h.age) / (self.alpha + h.age + horizon_days)))
        return self.p_alive(h) * (1.0 - stays_quiet)


def _log_no_dropout(m: BgNbd, h: History) -> np.ndarray:
    return -(m.r + h.x) * np.log(m.alpha + h.age)


def _log_likelihood_tail(m: BgNbd, h: History) -> np.ndarray:
    """log of (alpha+T)^-(r+x) + [x > 0] a / (b + x - 1) (alpha + t_x)^-(r+x): alive at T, or gone after t_x."""
    dropped = np.where(
        h.x > 0,
        np.log(m.a) - np.log(np.maximum(m.b + h.x - 1, 1e-12)) - (m.r + h.x) * np.log(m.alpha + h.t_x),
        -np.inf,
    )
    return np.logaddexp(_log_no_dropout(m, h), dropped)


def log_likelihood(m: BgNbd, h: History) -> float:
    per_visitor = (
        gammaln(m.r + h.x) - gammaln(m.r) + m.r * np.log(m.alpha)
        + betaln(m.a, m.b + h.x) - betaln(m.a, m.b)
        + _log_likelihood_tail(m, h)
    )  # fmt: skip
    return float(per_visitor.sum())


def fit(h: History) -> BgNbd:
    """Maximum likelihood over log-parameters (all four are positive), from a deterministic start; a quasi-Newton
    step with numerical gradients (a few dozen likelihoods) where Nelder-Mead needed hundreds."""

    def loss(theta: np.ndarray) -> float:
        with np.errstate(all="ignore"):  # the search's excursions to extreme parameters are simply rejected
            value = -log_likelihood(BgNbd(*np.exp(theta)), h) / h.x.size
        return value if np.isfinite(value) else 1e10

    start = np.log([0.5, max(float(np.mean(h.age)), 1.0), 1.0, 1.0])
    best = minimize(loss, start, method="L-BFGS-B")
    return BgNbd(*(float(v) for v in np.exp(best.x)))


def history(features: list[str], x: np.ndarray) -> History:
    """BG/NBD's inputs from rows of the features mart's columns (named by ``features``) at a cut-off. A cut-off is a
    day start, so whole days back from it name shop days: a first purchase on the first event's day is the birth,
    not a repeat."""

    def col(name: str) -> np.ndarray:
        return x[:, features.index(name)].astype(np.float64)

    age = col("days_since_first_event")
    purchase_days = np.nan_to_num(col("num_purchase_days_all"))
    first_buy, last_buy = col("days_since_first_transaction"), col("days_since_last_transaction")
    bought_at_birth = np.floor(first_buy) == np.floor(age)  # false where the visitor never bought (NaN)
    repeats = np.maximum(purchase_days - bought_at_birth, 0.0)
    t_x = np.where(repeats > 0, np.maximum(age - np.nan_to_num(last_buy), 0.0), 0.0)
    return History(x=repeats, t_x=t_x, age=np.maximum(age, 1e-6))


def fitting_sample(rows: LabelledSet) -> History:
    """The histories to fit on: every visitor's, or a fixed hash sample of FIT_ROWS of a large shop's."""
    h = history(rows.features, rows.x)
    if h.x.size <= FIT_ROWS:
        return h
    keep = hash_unit(rows.visitor_id, 29) < FIT_ROWS / h.x.size
    return History(h.x[keep], h.t_x[keep], h.age[keep])


def fitted_probabilities(rows: LabelledSet, horizon_days: int) -> np.ndarray:
    """Fit on the cut-off's own histories, then predict every visitor of it."""
    return fit(fitting_sample(rows)).p_purchase(history(rows.features, rows.x), horizon_days)
