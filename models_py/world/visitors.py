"""Each simulated visitor's hidden state: when it arrives and churns, how often it browses, and its purchase process.

While alive a visitor is a continuous-time Markov chain: *idle* -> *in market* at rate ``kappa`` (an outside
trigger), and an in-market episode ends at rate ``eps``, with a purchase with probability ``q`` (budget, taste) or
abandoned otherwise; either way the visitor goes back to idle. A first purchase multiplies ``kappa`` (loyalty).
``models_py.world.oracle`` turns this state into each visitor's exact probability of buying in a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from models_py.world.catalogue import Catalogue
from models_py.world.parameters import ShopParameters
from models_py.world.traffic import hourly_weights


@dataclass
class Visitors:
    """Latent traits of one chunk of visitors (times in days since the shop opened)."""

    arrival: np.ndarray
    death: np.ndarray
    end: np.ndarray  # churn or the end of the simulated period, whichever comes first
    browse_rate: np.ndarray
    churn_rate: np.ndarray
    kappa_new: np.ndarray
    kappa_customer: np.ndarray
    eps: np.ndarray
    taste: np.ndarray  # index into the catalogue's leaves
    taste_category: np.ndarray
    q: np.ndarray
    arrived_in_market: np.ndarray

    @property
    def size(self) -> int:
        return self.arrival.size


@dataclass
class Episodes:
    """In-market episodes: owner (visitor index), start, end, whether it ended in a purchase, the item wanted."""

    owner: np.ndarray
    start: np.ndarray
    end: np.ndarray
    bought: np.ndarray
    target: np.ndarray


def draw_visitors(params: ShopParameters, catalogue: Catalogue, rng: np.random.Generator, n: int) -> Visitors:
    # Arrivals follow the traffic cycle: pick an hour by its weight, then a moment inside it.
    hour_w = hourly_weights(params.days)
    hour = rng.choice(hour_w.size, size=n, p=hour_w / hour_w.sum())
    arrival = (hour + rng.random(n)) / 24.0

    z_activity = rng.standard_normal(n)
    heavy = rng.random(n) < params.heavy_user_share
    browse_rate = np.minimum(
        np.where(
            heavy,
            params.heavy_user_sessions_per_day * np.exp(rng.standard_normal(n)),
            params.return_sessions_per_day * np.exp(params.return_rate_sigma * z_activity),
        ),
        params.max_sessions_per_day,
    )
    churn_rate = 1.0 / (params.lifetime_mean_days * np.exp(params.lifetime_activity_link * z_activity))
    death = arrival + rng.exponential(1.0 / churn_rate)

    link = params.episode_activity_link
    z_episode = link * z_activity + np.sqrt(1 - link**2) * rng.standard_normal(n)
    kappa_new = np.minimum(
        params.episode_rate_median * np.exp(params.episode_rate_sigma * z_episode), params.max_episode_rate
    )
    kappa_customer = np.minimum(
        kappa_new * params.loyalty_multiplier_median * np.exp(params.loyalty_sigma * rng.standard_normal(n)),
        params.max_episode_rate,
    )
    eps = np.exp(rng.normal(0.0, params.episode_end_rate_sigma, n)) / params.episode_mean_days
    taste = rng.choice(catalogue.leaf_ids.size, size=n, p=catalogue.leaf_taste_p)
    taste_category = catalogue.leaf_ids[taste]
    q = expit(
        logit(params.conversion_median)
        + params.conversion_sigma * rng.standard_normal(n)
        + catalogue.category_conversion_logit[taste_category]
    )
    in_market = rng.random(n) < params.arrive_in_market_probability
    return Visitors(
        arrival=arrival,
        death=death,
        end=np.minimum(death, float(params.days)),
        browse_rate=browse_rate,
        churn_rate=churn_rate,
        kappa_new=kappa_new,
        kappa_customer=kappa_customer,
        eps=eps,
        taste=taste,
        taste_category=taste_category,
        q=q,
        arrived_in_market=in_market,
    )


def run_hidden_chain(visitors: Visitors, catalogue: Catalogue, rng: np.random.Generator) -> Episodes:
    """All visitors at once, one jump per loop, until each reaches churn or the end of the simulated period."""
    v = visitors
    in_market = v.arrived_in_market.copy()
    owners, starts, ends, boughts = [], [], [], []
    t = v.arrival.copy()
    customer = np.zeros(v.size, dtype=bool)
    open_start = np.where(in_market, v.arrival, np.nan)
    active = np.flatnonzero(t < v.end)
    while active.size:
        e = in_market[active]
        rate = np.where(e, v.eps[active], np.where(customer[active], v.kappa_customer[active], v.kappa_new[active]))
        t_next = t[active] + rng.exponential(1.0 / rate)
        stopped = t_next >= v.end[active]
        closing = active[e]
        bought = ~stopped[e] & (rng.random(closing.size) < v.q[closing])
        owners.append(closing)
        starts.append(open_start[closing])
        ends.append(np.where(stopped[e], v.end[closing], t_next[e]))
        boughts.append(bought)
        customer[closing[bought]] = True
        opening = active[~e & ~stopped]
        open_start[opening] = t_next[~e & ~stopped]
        in_market[active] = ~e
        t[active] = t_next
        active = active[~stopped]
    owner = np.concatenate(owners) if owners else np.empty(0, np.int64)
    return Episodes(
        owner=owner,
        start=np.concatenate(starts) if starts else np.empty(0),
        end=np.concatenate(ends) if ends else np.empty(0),
        bought=np.concatenate(boughts) if boughts else np.empty(0, bool),
        target=catalogue.sample_from_leaves(rng, v.taste[owner]),
    )
