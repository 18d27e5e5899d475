"""A simulated shop shaped like Retail Rocket, driven by hidden per-visitor state whose truth we keep.

Each visitor is a continuous-time Markov chain while alive: *idle* -> *in market* at rate ``kappa`` (an outside
trigger), and an in-market episode ends at rate ``eps``, with a purchase with probability ``q`` (budget, taste)
or abandoned otherwise; either way the visitor goes back to idle. Visitors churn at rate ``mu`` for good.
Browsing is a Poisson process on top (weekly and daily cycle), with extra "intent" sessions while in market that
view and cart the item the visitor is after. So behaviour reveals the hidden state only partly, and
``models_py.oracle`` can give each visitor's exact probability of buying in any window from the state at its start.

Everything is vectorised with numpy; visitors are simulated in chunks so that memory does not grow with scale.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy.special import expit, logit

from models_py import shop_clock
from models_py.events_file import EVENTS_SCHEMA, HEADER

SECONDS = 1.0 / 86_400.0
CSV_BODY = pacsv.WriteOptions(include_header=False, quoting_style="none")
CHUNK_VISITORS = 1_500_000


@dataclass(frozen=True)
class ShopParameters:
    """Knobs of the simulated shop; defaults were tuned so that scale 1 matches the real dataset's shape."""

    days: int = 138
    visitors_per_scale: int = 1_407_580
    catalogue_items: int = 417_053
    categories: int = 1_669
    root_categories: int = 25
    item_popularity_exponent: float = 1.1
    # browsing
    return_sessions_per_day: float = 0.0002
    return_rate_sigma: float = 1.9
    max_sessions_per_day: float = 60.0
    heavy_user_share: float = 0.0002  # crawlers and resellers: thousands of events each
    heavy_user_sessions_per_day: float = 2.5
    lifetime_mean_days: float = 1000.0
    lifetime_activity_link: float = -0.8
    views_per_browse_session: float = 1.30
    browse_cart_probability: float = 0.008
    taste_share: float = 0.7
    # the hidden purchase process
    episode_rate_median: float = 0.0002
    episode_rate_sigma: float = 0.2
    episode_activity_link: float = 0.6
    episode_mean_days: float = 1.0
    conversion_median: float = 0.30
    conversion_sigma: float = 0.15
    category_conversion_sigma: float = 1.0
    loyalty_multiplier_median: float = 120.0  # a first purchase multiplies the episode rate by about this
    loyalty_sigma: float = 0.3
    max_episode_rate: float = 0.25
    arrive_in_market_probability: float = 0.012
    intent_sessions_per_day: float = 6.0
    views_per_intent_session: float = 1.8
    target_view_share: float = 0.5
    intent_cart_probability: float = 0.11
    purchase_cart_probability: float = 0.9
    extra_items_per_purchase: float = 0.35


@dataclass(frozen=True)
class Catalogue:
    """Items, their categories and popularity; shared by every chunk of visitors."""

    category_parent: np.ndarray  # -1 for roots
    category_root: np.ndarray
    category_conversion_logit: np.ndarray  # shift of conversion by the category's root
    item_ids: np.ndarray  # item id at each position; positions are grouped by leaf category
    item_category: np.ndarray  # category of the item at each position
    cum_weight: np.ndarray  # exclusive prefix sum of item popularity, by position (len n+1)
    leaf_ids: np.ndarray
    leaf_start: np.ndarray  # first position of each leaf's items
    leaf_end: np.ndarray
    leaf_taste_p: np.ndarray  # probability a visitor's taste is each leaf

    def sample_from_leaves(self, rng: np.random.Generator, leaf: np.ndarray) -> np.ndarray:
        lo = self.cum_weight[self.leaf_start[leaf]]
        hi = self.cum_weight[self.leaf_end[leaf]]
        u = lo + (hi - lo) * rng.random(leaf.size)
        pos = np.searchsorted(self.cum_weight, u, side="right") - 1
        return self.item_ids[np.minimum(pos, self.item_ids.size - 1)]

    def sample_popular(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = self.cum_weight[-1] * rng.random(n)
        pos = np.searchsorted(self.cum_weight, u, side="right") - 1
        return self.item_ids[np.minimum(pos, self.item_ids.size - 1)]


def build_catalogue(params: ShopParameters, rng: np.random.Generator) -> Catalogue:
    n_cat, n_root = params.categories, params.root_categories
    parent = np.full(n_cat, -1, dtype=np.int64)
    # Each later category hangs under an earlier one, biased to the top: a tree 3-5 levels deep.
    j = np.arange(n_root, n_cat)
    parent[n_root:] = np.floor(j * rng.random(j.size) ** 2).astype(np.int64)
    root = np.arange(n_cat)
    for c in range(n_root, n_cat):  # 1,669 categories, not events: parents come first
        root[c] = root[parent[c]]
    has_child = np.zeros(n_cat, dtype=bool)
    has_child[parent[parent >= 0]] = True
    leaf_ids = np.flatnonzero(~has_child)
    root_shift = rng.normal(0.0, params.category_conversion_sigma, n_cat)
    conversion_logit = root_shift[root]

    n_items = params.catalogue_items
    leaf_weight = rng.lognormal(0.0, 1.0, leaf_ids.size)
    item_leaf_slot = rng.choice(leaf_ids.size, size=n_items, p=leaf_weight / leaf_weight.sum())
    order = np.argsort(item_leaf_slot, kind="stable")
    item_leaf_slot = item_leaf_slot[order]
    popularity_rank = rng.permutation(n_items)
    weight = (popularity_rank + 10.0) ** -params.item_popularity_exponent
    item_ids = rng.permutation(n_items).astype(np.int64)
    cum = np.concatenate([[0.0], np.cumsum(weight)])
    starts = np.searchsorted(item_leaf_slot, np.arange(leaf_ids.size), side="left")
    ends = np.searchsorted(item_leaf_slot, np.arange(leaf_ids.size), side="right")
    leaf_mass = cum[ends] - cum[starts]
    return Catalogue(
        category_parent=parent,
        category_root=root,
        category_conversion_logit=conversion_logit,
        item_ids=item_ids,
        item_category=leaf_ids[item_leaf_slot],
        cum_weight=cum,
        leaf_ids=leaf_ids,
        leaf_start=starts,
        leaf_end=ends,
        leaf_taste_p=leaf_mass / leaf_mass.sum(),
    )


def _poisson_times(
    rng: np.random.Generator, rate: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of inhomogeneous Poisson processes (mean ``rate`` per day, shaped by the traffic cycle).

    Returns (owner index, time) of the accepted points, by thinning candidates at the peak rate.
    """
    length = np.maximum(end - start, 0.0)
    peak = shop_clock.MAX_WEIGHT / shop_clock.MEAN_WEIGHT
    n = rng.poisson(rate * length * peak)
    owner = np.repeat(np.arange(rate.size), n)
    t = start[owner] + rng.random(owner.size) * length[owner]
    keep = rng.random(owner.size) * shop_clock.MAX_WEIGHT < shop_clock.traffic_weight(t)
    return owner[keep], t[keep]


def _grouped_offsets(rng: np.random.Generator, counts: np.ndarray, mean_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Within each group of ``counts`` events: cumulative exponential gaps (days) from zero, and first-in-group."""
    gaps = rng.exponential(mean_gap_s * SECONDS, int(counts.sum()))
    cs = np.cumsum(gaps)
    starts = (np.cumsum(counts) - counts)[counts > 0]
    first = np.zeros(cs.size, dtype=bool)
    first[starts] = True
    return cs - np.repeat(cs[starts], counts[counts > 0]), first


@dataclass
class ChunkResult:
    events: pa.Table
    visitors: pa.Table
    episodes: pa.Table
    transactions: int


def simulate_chunk(
    params: ShopParameters,
    catalogue: Catalogue,
    rng: np.random.Generator,
    n: int,
    id_offset: int,
    transaction_offset: int,
) -> ChunkResult:
    days = float(params.days)
    # Arrivals follow the traffic cycle: pick an hour by its weight, then a moment inside it.
    hour_w = shop_clock.hourly_weights(params.days)
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
    end = np.minimum(death, days)

    z_episode = params.episode_activity_link * z_activity + np.sqrt(
        1 - params.episode_activity_link**2
    ) * rng.standard_normal(n)
    kappa_new = np.minimum(
        params.episode_rate_median * np.exp(params.episode_rate_sigma * z_episode), params.max_episode_rate
    )
    kappa_customer = np.minimum(
        kappa_new * params.loyalty_multiplier_median * np.exp(params.loyalty_sigma * rng.standard_normal(n)),
        params.max_episode_rate,
    )
    eps = np.exp(rng.normal(0.0, 0.3, n)) / params.episode_mean_days
    taste = rng.choice(catalogue.leaf_ids.size, size=n, p=catalogue.leaf_taste_p)
    taste_category = catalogue.leaf_ids[taste]
    q = expit(
        logit(params.conversion_median)
        + params.conversion_sigma * rng.standard_normal(n)
        + catalogue.category_conversion_logit[taste_category]
    )
    in_market = rng.random(n) < params.arrive_in_market_probability
    arrived_in_market = in_market.copy()

    # The hidden chain, all visitors at once: one jump per loop, until each reaches churn or the end of data.
    ep_v, ep_start, ep_end, ep_bought = [], [], [], []
    t = arrival.copy()
    customer = np.zeros(n, dtype=bool)
    open_start = np.where(in_market, arrival, np.nan)
    active = np.flatnonzero(t < end)
    while active.size:
        e = in_market[active]
        rate = np.where(e, eps[active], np.where(customer[active], kappa_customer[active], kappa_new[active]))
        t_next = t[active] + rng.exponential(1.0 / rate)
        stopped = t_next >= end[active]
        closing = active[e]
        close_end = np.where(stopped[e], end[closing], t_next[e])
        bought = ~stopped[e] & (rng.random(closing.size) < q[closing])
        ep_v.append(closing)
        ep_start.append(open_start[closing])
        ep_end.append(close_end)
        ep_bought.append(bought)
        customer[closing[bought]] = True
        opening = active[~e & ~stopped]
        open_start[opening] = t_next[~e & ~stopped]
        in_market[active] = ~e
        t[active] = t_next
        active = active[~stopped]
    ep_v = np.concatenate(ep_v) if ep_v else np.empty(0, np.int64)
    ep_start = np.concatenate(ep_start) if ep_start else np.empty(0)
    ep_end = np.concatenate(ep_end) if ep_end else np.empty(0)
    ep_bought = np.concatenate(ep_bought) if ep_bought else np.empty(0, bool)
    ep_target = catalogue.sample_from_leaves(rng, taste[ep_v])

    # Sessions: the arrival, browsing while alive, intent sessions while in market, and purchases.
    b_owner, b_time = _poisson_times(rng, browse_rate, arrival, end)
    i_ep, i_time = _poisson_times(rng, np.full(ep_v.size, params.intent_sessions_per_day), ep_start, ep_end)
    arrival_ep = np.full(n, -1)
    first_ep = (ep_start == arrival[ep_v]) & arrived_in_market[ep_v]
    arrival_ep[ep_v[first_ep]] = np.flatnonzero(first_ep)
    p_ep = np.flatnonzero(ep_bought)

    kind_browse, kind_intent, kind_purchase = 0, 1, 2
    s_owner = np.concatenate([np.arange(n), b_owner, ep_v[i_ep], ep_v[p_ep]])
    s_time = np.concatenate([arrival, b_time, i_time, ep_end[p_ep]])
    s_ep = np.concatenate([arrival_ep, np.full(b_owner.size, -1), i_ep, p_ep])
    s_kind = np.concatenate(
        [
            np.where(arrival_ep >= 0, kind_intent, kind_browse),
            np.full(b_owner.size, kind_browse),
            np.full(i_ep.size, kind_intent),
            np.full(p_ep.size, kind_purchase),
        ]
    )

    mean_views = np.select(
        [s_kind == kind_browse, s_kind == kind_intent],
        [params.views_per_browse_session, params.views_per_intent_session],
        2.0,
    )
    n_views = rng.geometric(1.0 / mean_views)
    v_sess = np.repeat(np.arange(s_owner.size), n_views)
    offsets, first_view = _grouped_offsets(rng, n_views, 50.0)
    v_kind = s_kind[v_sess]
    # Purchase sessions lead up to the purchase instant; others start at their session time.
    v_time = np.where(v_kind == kind_purchase, s_time[v_sess] - offsets - 60 * SECONDS, s_time[v_sess] + offsets)
    v_owner = s_owner[v_sess]
    from_taste = rng.random(v_sess.size) < params.taste_share
    v_item = np.where(
        from_taste,
        catalogue.sample_from_leaves(rng, taste[v_owner]),
        catalogue.sample_popular(rng, v_sess.size),
    )
    has_ep = s_ep[v_sess] >= 0
    on_target = has_ep & ((v_kind == kind_purchase) & first_view | (rng.random(v_sess.size) < params.target_view_share))
    v_item = np.where(on_target, ep_target[np.maximum(s_ep[v_sess], 0)], v_item)

    # Carts: rare while browsing, the target item while in market, nearly always right before a purchase.
    last_view = np.concatenate([first_view[1:], [True]])
    cart_p = np.select(
        [v_kind == kind_browse, v_kind == kind_intent],
        [params.browse_cart_probability, params.intent_cart_probability],
        0.0,
    )
    cart = last_view & (rng.random(v_sess.size) < cart_p)
    c_owner = v_owner[cart]
    c_time = v_time[cart] + rng.uniform(5, 120, cart.sum()) * SECONDS
    c_item = np.where(has_ep[cart], ep_target[np.maximum(s_ep[v_sess][cart], 0)], v_item[cart])

    # Purchases: the target plus sometimes a few more items, one transaction id, all at the purchase instant.
    n_items = 1 + rng.poisson(params.extra_items_per_purchase, p_ep.size)
    t_ep = np.repeat(p_ep, n_items)
    t_first = (
        np.concatenate([[True], np.diff(np.repeat(np.arange(p_ep.size), n_items)) != 0])
        if t_ep.size
        else np.empty(0, bool)
    )
    t_item = np.where(t_first, ep_target[t_ep], catalogue.sample_from_leaves(rng, taste[ep_v[t_ep]]))
    t_owner = ep_v[t_ep]
    t_time = ep_end[t_ep]
    order = np.argsort(ep_end[p_ep], kind="stable")
    tx_id = np.empty(p_ep.size, np.int64)
    tx_id[order] = transaction_offset + np.arange(p_ep.size)
    t_txid = np.repeat(tx_id, n_items)
    pre_cart = rng.random(t_ep.size) < np.where(t_first, params.purchase_cart_probability, 0.8)
    pc_owner = t_owner[pre_cart]
    pc_time = t_time[pre_cart] - rng.uniform(5, 55, pre_cart.sum()) * SECONDS
    pc_item = t_item[pre_cart]
    extra_view = ~t_first
    ev_owner = t_owner[extra_view]
    ev_time = t_time[extra_view] - rng.uniform(60, 600, extra_view.sum()) * SECONDS
    ev_item = t_item[extra_view]

    owner = np.concatenate([v_owner, ev_owner, c_owner, pc_owner, t_owner])
    time = np.concatenate([v_time, ev_time, c_time, pc_time, t_time])
    item = np.concatenate([v_item, ev_item, c_item, pc_item, t_item])
    event = np.concatenate(
        [
            np.zeros(v_owner.size + ev_owner.size, np.int8),
            np.ones(c_owner.size + pc_owner.size, np.int8),
            np.full(t_owner.size, 2, np.int8),
        ]
    )
    txid = np.concatenate([np.full(owner.size - t_owner.size, -1), t_txid])
    # A visitor's first event is its arrival; nothing falls outside the simulated period.
    time = np.maximum(time, arrival[owner])
    keep = time < days
    owner, time, item, event, txid = owner[keep], time[keep], item[keep], event[keep], txid[keep]
    order = np.argsort(time, kind="stable")
    owner, time, item, event, txid = owner[order], time[order], item[order], event[order], txid[order]

    visitor_ids = id_offset + rng.permutation(n).astype(np.int64)
    ts = shop_clock.SHOP_START_MS + np.floor(time * shop_clock.DAY_MS).astype(np.int64)
    events = pa.table(
        {
            "timestamp": pa.array(ts, pa.int64()),
            "visitorid": pa.array(visitor_ids[owner], pa.int64()),
            "event": pa.DictionaryArray.from_arrays(
                pa.array(event, pa.int8()), pa.array(["view", "addtocart", "transaction"])
            ).cast(pa.string()),
            "itemid": pa.array(item, pa.int64()),
            "transactionid": pa.array(txid, pa.int64(), mask=txid < 0),
        }
    )

    def ms(t_days: np.ndarray) -> np.ndarray:
        return shop_clock.SHOP_START_MS + np.floor(np.minimum(t_days, 1e5) * shop_clock.DAY_MS).astype(np.int64)

    visitors = pa.table(
        {
            "visitor_id": visitor_ids,
            "arrived_at_ms": ms(arrival),
            "churned_at_ms": ms(death),
            "browse_rate": browse_rate,
            "churn_rate": churn_rate,
            "episode_rate_new": kappa_new,
            "episode_rate_customer": kappa_customer,
            "episode_end_rate": eps,
            "conversion": q,
            "taste_category_id": taste_category,
        }
    )
    episodes = pa.table(
        {
            "visitor_id": visitor_ids[ep_v],
            "started_at_ms": ms(ep_start),
            "ended_at_ms": ms(ep_end),
            "ended_in_purchase": ep_bought,
            "target_item_id": ep_target,
        }
    )
    return ChunkResult(events=events, visitors=visitors, episodes=episodes, transactions=int(p_ep.size))


def _day_file(out: Path, day_index: int) -> Path:
    day = shop_clock.SHOP_START.date() + timedelta(days=day_index)
    return out / f"events_{day.isoformat()}.csv"


def simulate(
    out: Path,
    truth_dir: Path,
    scale: float = 1.0,
    seed: int = 42,
    params: ShopParameters | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Write one CSV per shop day into ``out`` (real schema) and the hidden truth as Parquet into ``truth_dir``.

    Files are written to a scratch folder and moved into place at the end, so a nightly run never sees half a world.
    """
    params = params or ShopParameters()
    n_total = max(1, round(params.visitors_per_scale * scale))
    root_rng = np.random.default_rng(seed)
    catalogue = build_catalogue(params, np.random.default_rng([seed, 0]))
    del root_rng

    out.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    scratch = out / ".simulate-tmp"
    truth_scratch = truth_dir / ".simulate-tmp"
    for d in (scratch, truth_scratch):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)

    n_chunks = -(-n_total // CHUNK_VISITORS)
    written_days: set[int] = set()
    totals = {"events": 0, "visitors": n_total, "transactions": 0, "chunks": n_chunks}
    for chunk in range(n_chunks):
        lo = chunk * CHUNK_VISITORS
        n = min(CHUNK_VISITORS, n_total - lo)
        result = simulate_chunk(
            params, catalogue, np.random.default_rng([seed, 1, chunk]), n, lo, totals["transactions"]
        )
        totals["transactions"] += result.transactions
        totals["events"] += result.events.num_rows
        day = (result.events["timestamp"].to_numpy() - shop_clock.SHOP_START_MS) // shop_clock.DAY_MS
        bounds = np.searchsorted(day, np.arange(params.days + 1))
        for d in range(params.days):
            piece = result.events.slice(bounds[d], bounds[d + 1] - bounds[d])
            path = _day_file(scratch, d)
            with open(path, "ab") as fh:
                if d not in written_days:
                    fh.write((HEADER + "\n").encode())
                pacsv.write_csv(piece, fh, CSV_BODY)
            written_days.add(d)
        pq.write_table(result.visitors, truth_scratch / f"visitors_{chunk:05d}.parquet")
        pq.write_table(result.episodes, truth_scratch / f"episodes_{chunk:05d}.parquet")
        if progress:
            progress(f"chunk {chunk + 1}/{n_chunks}: {totals['events']:,} events so far")
        del result

    if n_chunks > 1:  # chunks each cover every day: put each day file back in time order
        for d in sorted(written_days):
            path = _day_file(scratch, d)
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=EVENTS_SCHEMA))
            write_csv(table.sort_by("timestamp"), path)

    _write_catalogue(scratch, catalogue)
    for old in list(out.glob("events_*.csv")) + [out / "category_tree.csv", out / "item_properties.csv"]:
        old.unlink(missing_ok=True)
    for f in sorted(scratch.iterdir()):
        f.replace(out / f.name)
    for old in truth_dir.glob("*.parquet"):
        old.unlink()
    for f in sorted(truth_scratch.iterdir()):
        f.replace(truth_dir / f.name)
    world = {"seed": seed, "scale": scale, "days": params.days, "start_ms": shop_clock.SHOP_START_MS}
    (truth_dir / "world.json").write_text(json.dumps(world) + "\n")
    scratch.rmdir()
    truth_scratch.rmdir()
    return totals


def write_csv(table: pa.Table, path: Path) -> None:
    """CSV the way the real files look: a bare header line, no quotes, empty cells for nulls."""
    with open(path, "wb") as fh:
        fh.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, CSV_BODY)


def _write_catalogue(out: Path, catalogue: Catalogue) -> None:
    parent = catalogue.category_parent
    write_csv(
        pa.table(
            {
                "categoryid": np.arange(parent.size, dtype=np.int64),
                "parentid": pa.array(parent, pa.int64(), mask=parent < 0),
            }
        ),
        out / "category_tree.csv",
    )
    n = catalogue.item_ids.size
    write_csv(
        pa.table(
            {
                "timestamp": np.full(n, shop_clock.SHOP_START_MS, np.int64),
                "itemid": catalogue.item_ids,
                "property": pa.array(["categoryid"] * n),
                "value": catalogue.item_category.astype(str),
            }
        ),
        out / "item_properties.csv",
    )
