"""What the hidden state shows: sessions, the views in them, carts and purchases, as (owner, time, item, event) rows.

Sessions are the arrival, browsing while alive, extra "intent" sessions while in market (viewing and carting the
item wanted), and the session that leads up to each purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models_py.world.catalogue import Catalogue
from models_py.world.parameters import ShopParameters
from models_py.world.traffic import SECONDS, grouped_offsets, poisson_times
from models_py.world.visitors import Episodes, Visitors

BROWSE, INTENT, PURCHASE = 0, 1, 2
VIEW, ADDTOCART, TRANSACTION = 0, 1, 2


@dataclass
class Sessions:
    owner: np.ndarray
    time: np.ndarray
    episode: np.ndarray  # the in-market episode a session serves, -1 for none
    kind: np.ndarray  # BROWSE, INTENT or PURCHASE


@dataclass
class Actions:
    """Rows of one kind of behaviour: who, when (days), which item."""

    owner: np.ndarray
    time: np.ndarray
    item: np.ndarray


def draw_sessions(params: ShopParameters, v: Visitors, ep: Episodes, rng: np.random.Generator) -> Sessions:
    n = v.size
    b_owner, b_time = poisson_times(rng, v.browse_rate, v.arrival, v.end)
    i_ep, i_time = poisson_times(rng, np.full(ep.owner.size, params.intent_sessions_per_day), ep.start, ep.end)
    # A visitor that arrives in market spends its arrival session on that first episode.
    arrival_ep = np.full(n, -1)
    first_ep = (ep.start == v.arrival[ep.owner]) & v.arrived_in_market[ep.owner]
    arrival_ep[ep.owner[first_ep]] = np.flatnonzero(first_ep)
    p_ep = np.flatnonzero(ep.bought)
    return Sessions(
        owner=np.concatenate([np.arange(n), b_owner, ep.owner[i_ep], ep.owner[p_ep]]),
        time=np.concatenate([v.arrival, b_time, i_time, ep.end[p_ep]]),
        episode=np.concatenate([arrival_ep, np.full(b_owner.size, -1), i_ep, p_ep]),
        kind=np.concatenate(
            [
                np.where(arrival_ep >= 0, INTENT, BROWSE),
                np.full(b_owner.size, BROWSE),
                np.full(i_ep.size, INTENT),
                np.full(p_ep.size, PURCHASE),
            ]
        ),
    )


def draw_views(
    params: ShopParameters, catalogue: Catalogue, v: Visitors, ep: Episodes, s: Sessions, rng: np.random.Generator
) -> tuple[Actions, np.ndarray, np.ndarray]:
    """Views, the session of each view, and whether it is its session's last (where a cart may follow)."""
    mean_views = np.select(
        [s.kind == BROWSE, s.kind == INTENT],
        [params.views_per_browse_session, params.views_per_intent_session],
        params.views_per_purchase_session,
    )
    n_views = rng.geometric(1.0 / mean_views)
    session = np.repeat(np.arange(s.owner.size), n_views)
    offsets, first_view = grouped_offsets(rng, n_views, params.view_gap_seconds)
    kind = s.kind[session]
    # Purchase sessions lead up to the purchase instant; others start at their session time.
    time = np.where(kind == PURCHASE, s.time[session] - offsets - 60 * SECONDS, s.time[session] + offsets)
    owner = s.owner[session]
    taste_share = np.where(session < v.size, params.arrival_taste_share, params.taste_share)
    from_taste = rng.random(session.size) < taste_share
    item = np.where(
        from_taste,
        catalogue.sample_from_leaves(rng, v.taste[owner]),
        catalogue.sample_popular(rng, session.size),
    )
    has_ep = s.episode[session] >= 0
    on_target = has_ep & ((kind == PURCHASE) & first_view | (rng.random(session.size) < params.target_view_share))
    item = np.where(on_target, ep.target[np.maximum(s.episode[session], 0)], item)
    last_view = np.concatenate([first_view[1:], [True]])
    return Actions(owner, time, item), session, last_view


def draw_carts(
    params: ShopParameters,
    ep: Episodes,
    s: Sessions,
    views: Actions,
    session: np.ndarray,
    last_view: np.ndarray,
    rng: np.random.Generator,
) -> Actions:
    """Carts: rare while browsing, the wanted item while in market; they follow a session's last view."""
    kind = s.kind[session]
    cart_p = np.select(
        [kind == BROWSE, kind == INTENT], [params.browse_cart_probability, params.intent_cart_probability], 0.0
    )
    cart = last_view & (rng.random(session.size) < cart_p)
    in_episode = s.episode[session][cart]
    return Actions(
        owner=views.owner[cart],
        time=views.time[cart] + rng.uniform(5, 120, cart.sum()) * SECONDS,
        item=np.where(in_episode >= 0, ep.target[np.maximum(in_episode, 0)], views.item[cart]),
    )


def draw_purchases(
    params: ShopParameters, catalogue: Catalogue, v: Visitors, ep: Episodes, transaction_offset: int, rng
) -> tuple[Actions, np.ndarray, Actions, Actions]:
    """Purchased items (the wanted one plus sometimes more, one transaction id, all at the purchase instant), their
    transaction ids, the carts just before them, and the views of the extra items."""
    p_ep = np.flatnonzero(ep.bought)
    n_items = 1 + rng.poisson(params.extra_items_per_purchase, p_ep.size)
    t_ep = np.repeat(p_ep, n_items)
    t_first = (
        np.concatenate([[True], np.diff(np.repeat(np.arange(p_ep.size), n_items)) != 0])
        if t_ep.size
        else np.empty(0, bool)
    )
    item = np.where(t_first, ep.target[t_ep], catalogue.sample_from_leaves(rng, v.taste[ep.owner[t_ep]]))
    bought = Actions(owner=ep.owner[t_ep], time=ep.end[t_ep], item=item)
    order = np.argsort(ep.end[p_ep], kind="stable")
    tx_id = np.empty(p_ep.size, np.int64)
    tx_id[order] = transaction_offset + np.arange(p_ep.size)
    carted = rng.random(t_ep.size) < np.where(
        t_first, params.purchase_cart_probability, params.extra_item_cart_probability
    )
    pre_carts = Actions(
        owner=bought.owner[carted],
        time=bought.time[carted] - rng.uniform(5, 55, carted.sum()) * SECONDS,
        item=bought.item[carted],
    )
    extra = ~t_first
    extra_views = Actions(
        owner=bought.owner[extra],
        time=bought.time[extra] - rng.uniform(60, 600, extra.sum()) * SECONDS,
        item=bought.item[extra],
    )
    return bought, np.repeat(tx_id, n_items), pre_carts, extra_views
