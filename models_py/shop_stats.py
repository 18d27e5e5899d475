"""Shape of an event log next to the real Retail Rocket figures, each with the tolerance we hold the simulator to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
from sklearn.metrics import roc_auc_score

from models_py import shop_clock
from models_py.oracle import true_probabilities

# Figures of the real events.csv (../shared/reference/retailrocket.md); shares in percent.
REAL = {
    "days": 138,
    "events": 2_756_101,
    "visitors": 1_407_580,
    "view_pct": 96.7,
    "addtocart_pct": 2.5,
    "transaction_pct": 0.8,
    "items": 235_000,
}


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    real: str
    tolerance: str
    ok: bool


def _events_sql(landing: Path) -> str:
    pattern = str(landing / "events_*.csv").replace("'", "''")
    return (
        f"select * from read_csv('{pattern}', header = true, columns = {{'timestamp': 'BIGINT', "
        "'visitorid': 'BIGINT', 'event': 'VARCHAR', 'itemid': 'BIGINT', 'transactionid': 'BIGINT'})"
    )


def _within(value: float, target: float, rel: float) -> bool:
    return abs(value - target) <= rel * target


def shape_figures(landing: Path, scale: float = 1.0) -> list[Figure]:
    """Measure the log in ``landing``; counts are compared after dividing by ``scale``."""
    con = load_events(landing)
    day_ms, start = shop_clock.DAY_MS, shop_clock.SHOP_START_MS
    (n, visitors, items, views, carts, txs, first_ms, last_ms) = con.execute(
        """select count(*), count(distinct visitorid), count(distinct itemid),
           count(*) filter (where event = 'view'), count(*) filter (where event = 'addtocart'),
           count(*) filter (where event = 'transaction'), min(timestamp), max(timestamp) from events"""
    ).fetchone()
    days = (last_ms - start) // day_ms + 1 if first_ms >= start else -1
    one_two, max_per_visitor = con.execute(
        """with per as (select visitorid, count(*) as n from events group by 1)
           select avg((n <= 2)::int), max(n) from per"""
    ).fetchone()
    top1_share = con.execute(
        """with per as (select itemid, count(*) as n from events where event = 'view' group by 1),
           ranked as (select n, row_number() over (order by n desc) as r, count(*) over () as k from per)
           select sum(n) filter (where r <= greatest(1, k // 100)) / sum(n) from ranked"""
    ).fetchone()[0]
    weekend_ratio = con.execute(
        f"""with per_day as (select (timestamp - {start}) // {day_ms} as d, count(*) as n from events group by 1),
           dow as (select n, (d + {shop_clock.SHOP_START.weekday()}) % 7 >= 5 as weekend from per_day
                   where d between 1 and {days - 2})
           select avg(n) filter (where weekend) / avg(n) filter (where not weekend) from dow"""
    ).fetchone()[0]
    sessions_per_visitor, events_per_session, returning = con.execute(
        """with gaps as (
               select visitorid, (timestamp - lag(timestamp) over (partition by visitorid order by timestamp))
                   > 30 * 60 * 1000 as new_session from events),
           per as (select visitorid, 1 + count(*) filter (where new_session) as sessions, count(*) as n
                   from gaps group by 1)
           select avg(sessions), sum(n) / sum(sessions), avg((sessions >= 2)::int) from per"""
    ).fetchone()
    cart_before_buy = con.execute(
        """with tx as (select visitorid, itemid, min(timestamp) as bought_at from events
                       where event = 'transaction' group by 1, 2),
           carts as (select visitorid, itemid, min(timestamp) as carted_at from events
                     where event = 'addtocart' group by 1, 2)
           select avg((carted_at is not null and carted_at <= bought_at)::int)
           from tx left join carts using (visitorid, itemid)"""
    ).fetchone()[0]
    repeat_buyers, buyers, transactions = con.execute(
        """with per as (select visitorid, count(distinct transactionid) as k from events
                        where event = 'transaction' group by 1)
           select avg((k >= 2)::int), count(*), sum(k) from per"""
    ).fetchone()
    churned = con.execute(
        f"""with per as (
               select visitorid,
                      count(distinct (timestamp - {start}) // {day_ms}) filter (where timestamp < {start + 60 * day_ms})
                          as early_days,
                      max(timestamp) as last_at
               from events group by 1)
           select avg((last_at < {start + (days - 30) * day_ms})::int) from per where early_days >= 3"""
    ).fetchone()[0]
    con.close()

    def pct(x: int) -> float:
        return 100.0 * x / n

    s = scale
    return [
        Figure("days", days, "138", "exact", days == REAL["days"]),
        Figure("events / scale", n / s, "2,756,101", "+-5%", _within(n / s, REAL["events"], 0.05)),
        Figure("visitors / scale", visitors / s, "1,407,580", "+-5%", _within(visitors / s, REAL["visitors"], 0.05)),
        Figure("view %", pct(views), "96.7", "+-0.5 pt", abs(pct(views) - 96.7) <= 0.5),
        Figure("addtocart %", pct(carts), "2.5", "+-0.3 pt", abs(pct(carts) - 2.5) <= 0.3),
        Figure("transaction %", pct(txs), "0.8", "+-0.15 pt", abs(pct(txs) - 0.8) <= 0.15),
        Figure(
            "distinct items (scale 1)",
            items,
            "~235,000",
            "+-10% at scale 1",
            s != 1 or _within(items, REAL["items"], 0.10),
        ),
        Figure("top 1% items' share of views", top1_share, "skewed", ">= 0.15", top1_share >= 0.15),
        Figure("visitors with 1-2 events", one_two, "most", ">= 0.75", one_two >= 0.75),
        Figure(
            "max events of one visitor",
            max_per_visitor,
            "thousands",
            ">= 1,000 at scale 1",
            max_per_visitor >= (1000 if s >= 1 else 100),
        ),
        Figure("weekend / weekday events per day", weekend_ratio, "dip", "<= 0.95", weekend_ratio <= 0.95),
        Figure(
            "sessions per visitor (30 min gap)",
            sessions_per_visitor,
            "-",
            "1.05 - 2.0",
            1.05 <= sessions_per_visitor <= 2.0,
        ),
        Figure("events per session", events_per_session, "-", "1.2 - 3.0", 1.2 <= events_per_session <= 3.0),
        Figure("returning visitors (>= 2 sessions)", returning, "-", "0.05 - 0.40", 0.05 <= returning <= 0.40),
        Figure("bought items carted before", cart_before_buy, "mostly", ">= 0.70", cart_before_buy >= 0.70),
        Figure("buyers / scale", buyers / s, "11,719", "+-15%", _within(buyers / s, 11_719, 0.15)),
        Figure("transactions / scale", transactions / s, "17,672", "+-15%", _within(transactions / s, 17_672, 0.15)),
        Figure("repeat buyers (>= 2 transactions)", repeat_buyers, "-", ">= 0.10", repeat_buyers >= 0.10),
        Figure("active early (>= 3 days), gone last 30 days", churned, "-", ">= 0.20", churned >= 0.20),
    ]


def load_events(landing: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the landing folder's events as table ``events``."""
    con = duckdb.connect()
    con.execute(f"create table events as {_events_sql(landing)}")
    return con


def realised_labels(con: duckdb.DuckDBPyConnection, as_of: date, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Visitors seen before ``as_of`` and whether each bought in (as_of, as_of + horizon]."""
    cutoff = shop_clock.day_start_ms(as_of)
    end = cutoff + horizon_days * shop_clock.DAY_MS
    rows = con.execute(
        """select visitorid, bool_or(event = 'transaction' and timestamp > ? and timestamp <= ?) as bought
           from events where timestamp <= ? group by 1 having min(timestamp) < ?""",
        [cutoff, end, end, cutoff],
    ).fetchnumpy()
    return rows["visitorid"], rows["bought"].astype(bool)


@dataclass(frozen=True)
class OracleCheck:
    as_of: date
    visitors: int
    buyers: int
    mean_true_probability: float
    observed_rate: float
    oracle_roc_auc: float


def oracle_check(con: duckdb.DuckDBPyConnection, truth_dir: Path, as_of: date, horizon_days: int = 7) -> OracleCheck:
    truth = true_probabilities(truth_dir, as_of, horizon_days)
    vid, bought = realised_labels(con, as_of, horizon_days)
    order = np.argsort(truth["visitor_id"].to_numpy())
    tv = truth["visitor_id"].to_numpy()[order]
    tp = truth["true_probability"].to_numpy()[order]
    pos = np.searchsorted(tv, vid)
    if not np.array_equal(tv[np.minimum(pos, tv.size - 1)], vid):
        raise ValueError("truth and event log disagree on who was seen before the cut-off: different worlds?")
    p = tp[pos]
    auc = roc_auc_score(bought, p) if 0 < bought.sum() < bought.size else float("nan")
    return OracleCheck(as_of, int(vid.size), int(bought.sum()), float(p.mean()), float(bought.mean()), float(auc))


def default_cutoffs(days: int = 138, horizon_days: int = 7, step_days: int = 7, warmup_days: int = 35) -> list[date]:
    """Weekly cut-offs whose label window is complete, after a warm-up of history."""
    start = shop_clock.SHOP_START.date()
    last = start + timedelta(days=days - horizon_days)
    out, d = [], last
    while (d - start).days >= warmup_days:
        out.append(d)
        d -= timedelta(days=step_days)
    return sorted(out)
