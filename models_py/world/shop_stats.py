"""Shape of an event log next to the real Retail Rocket figures, each with the tolerance we hold the simulator to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
from sklearn.metrics import roc_auc_score

from models_py.shop_calendar import DAY_MS
from models_py.world.oracle import true_probabilities
from models_py.world.traffic import CALENDAR, SHOP_START, SHOP_START_MS

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


def _measure(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Every figure the shape check needs, from the ``events`` table of ``con``."""
    day_ms, start = DAY_MS, SHOP_START_MS
    m: dict[str, float] = {}
    (m["events"], m["visitors"], m["items"], m["views"], m["carts"], m["txs"], first_ms, last_ms) = con.execute(
        """select count(*), count(distinct visitorid), count(distinct itemid),
           count(*) filter (where event = 'view'), count(*) filter (where event = 'addtocart'),
           count(*) filter (where event = 'transaction'), min(timestamp), max(timestamp) from events"""
    ).fetchone()
    m["days"] = days = (last_ms - start) // day_ms + 1 if first_ms >= start else -1
    queries = {
        ("one_two", "max_per_visitor"): """with per as (select visitorid, count(*) as n from events group by 1)
            select avg((n <= 2)::int), max(n) from per""",
        ("top1_share",): """with per as (select itemid, count(*) as n from events where event = 'view' group by 1),
            ranked as (select n, row_number() over (order by n desc) as r, count(*) over () as k from per)
            select sum(n) filter (where r <= greatest(1, k // 100)) / sum(n) from ranked""",
        ("weekend_ratio",): f"""with per_day as (select (timestamp - {start}) // {day_ms} as d, count(*) as n
                from events group by 1),
            dow as (select n, (d + {SHOP_START.weekday()}) % 7 >= 5 as weekend from per_day
                    where d between 1 and {days - 2})
            select avg(n) filter (where weekend) / avg(n) filter (where not weekend) from dow""",
        ("sessions_per_visitor", "events_per_session", "returning"): """with gaps as (
                select visitorid, (timestamp - lag(timestamp) over (partition by visitorid order by timestamp))
                    > 30 * 60 * 1000 as new_session from events),
            per as (select visitorid, 1 + count(*) filter (where new_session) as sessions, count(*) as n
                    from gaps group by 1)
            select avg(sessions), sum(n) / sum(sessions), avg((sessions >= 2)::int) from per""",
        ("cart_before_buy",): """with tx as (select visitorid, itemid, min(timestamp) as bought_at from events
                where event = 'transaction' group by 1, 2),
            carts as (select visitorid, itemid, min(timestamp) as carted_at from events
                where event = 'addtocart' group by 1, 2)
            select avg((carted_at is not null and carted_at <= bought_at)::int)
            from tx left join carts using (visitorid, itemid)""",
        ("repeat_buyers", "buyers", "transactions"): """with per as (select visitorid,
                count(distinct transactionid) as k from events where event = 'transaction' group by 1)
            select avg((k >= 2)::int), count(*), sum(k) from per""",
        ("churned",): f"""with per as (select visitorid,
                count(distinct (timestamp - {start}) // {day_ms}) filter (where timestamp < {start + 60 * day_ms})
                    as early_days,
                max(timestamp) as last_at
                from events group by 1)
            select avg((last_at < {start + (days - 30) * day_ms})::int) from per where early_days >= 3""",
    }
    for names, sql in queries.items():
        m.update(zip(names, con.execute(sql).fetchone(), strict=True))
    return m


def shape_figures(landing: Path, scale: float = 1.0) -> list[Figure]:
    """Measure the log in ``landing``; counts are compared after dividing by ``scale``."""
    con = load_events(landing)
    m = _measure(con)
    con.close()
    n, s = m["events"], scale
    visitors, buyers, transactions = m["visitors"] / s, m["buyers"] / s, m["transactions"] / s

    def pct(key: str) -> float:
        return 100.0 * m[key] / n

    def between(key: str, low: float, high: float) -> bool:
        return low <= m[key] <= high

    rows = [
        ("days", m["days"], "138", "exact", m["days"] == REAL["days"]),
        ("events / scale", n / s, "2,756,101", "+-5%", _within(n / s, REAL["events"], 0.05)),
        ("visitors / scale", visitors, "1,407,580", "+-5%", _within(visitors, REAL["visitors"], 0.05)),
        ("view %", pct("views"), "96.7", "+-0.5 pt", abs(pct("views") - 96.7) <= 0.5),
        ("addtocart %", pct("carts"), "2.5", "+-0.3 pt", abs(pct("carts") - 2.5) <= 0.3),
        ("transaction %", pct("txs"), "0.8", "+-0.15 pt", abs(pct("txs") - 0.8) <= 0.15),
        ("distinct items (scale 1)", m["items"], "~235,000", "+-10% at scale 1",
         s != 1 or _within(m["items"], REAL["items"], 0.10)),
        ("top 1% items' share of views", m["top1_share"], "skewed", ">= 0.15", m["top1_share"] >= 0.15),
        ("visitors with 1-2 events", m["one_two"], "most", ">= 0.75", m["one_two"] >= 0.75),
        ("max events of one visitor", m["max_per_visitor"], "thousands", ">= 1,000 at scale 1",
         m["max_per_visitor"] >= (1000 if s >= 1 else 100)),
        ("weekend / weekday events per day", m["weekend_ratio"], "dip", "<= 0.95", m["weekend_ratio"] <= 0.95),
        ("sessions per visitor (30 min gap)", m["sessions_per_visitor"], "-", "1.05 - 2.0",
         between("sessions_per_visitor", 1.05, 2.0)),
        ("events per session", m["events_per_session"], "-", "1.2 - 3.0", between("events_per_session", 1.2, 3.0)),
        ("returning visitors (>= 2 sessions)", m["returning"], "-", "0.05 - 0.40", between("returning", 0.05, 0.40)),
        ("bought items carted before", m["cart_before_buy"], "mostly", ">= 0.70", m["cart_before_buy"] >= 0.70),
        ("buyers / scale", buyers, "11,719", "+-15%", _within(buyers, 11_719, 0.15)),
        ("transactions / scale", transactions, "17,672", "+-15%", _within(transactions, 17_672, 0.15)),
        ("repeat buyers (>= 2 transactions)", m["repeat_buyers"], "-", ">= 0.10", m["repeat_buyers"] >= 0.10),
        ("active early (>= 3 days), gone last 30 days", m["churned"], "-", ">= 0.20", m["churned"] >= 0.20),
    ]  # fmt: skip
    return [Figure(*row) for row in rows]


def load_events(landing: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the landing folder's events as table ``events``."""
    con = duckdb.connect()
    con.execute(f"create table events as {_events_sql(landing)}")
    return con


def realised_labels(con: duckdb.DuckDBPyConnection, as_of: date, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Visitors seen before ``as_of`` and whether each bought in [cut-off, cut-off + horizon): the product's labels."""
    cutoff = CALENDAR.day_start_ms(as_of)
    end = cutoff + horizon_days * DAY_MS
    rows = con.execute(
        """select visitorid, bool_or(event = 'transaction' and timestamp >= ? and timestamp < ?) as bought
           from events where timestamp < ? group by 1 having min(timestamp) < ?""",
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
    start = SHOP_START.date()
    last = start + timedelta(days=days - horizon_days)
    out, d = [], last
    while (d - start).days >= warmup_days:
        out.append(d)
        d -= timedelta(days=step_days)
    return sorted(out)


def stats_report(landing: Path, truth_dir: Path, scale: float, horizon_days: int) -> tuple[list[str], bool]:
    """The shape next to the real dataset's and the oracle at every cut-off, as printable lines; and whether every
    figure is within its tolerance and the truth agrees with the realised labels."""
    figures = shape_figures(landing, scale)
    lines = [f"{'figure':44} {'simulated':>14} {'real':>12}  tolerance"]
    for f in figures:
        value = f"{f.value:,.0f}" if abs(f.value) >= 100 else f"{f.value:.3f}"
        lines.append(f"{f.name:44} {value:>14} {f.real:>12}  {f.tolerance:18} {'ok' if f.ok else 'OUT'}")
    lines += [
        f"\noracle: true P(buy in next {horizon_days} days) from the hidden state, against realised labels",
        f"{'as-of date':12} {'visitors':>10} {'buyers':>7} {'mean true p':>12} {'observed':>9} {'oracle AUC':>11}",
    ]
    con = load_events(landing)
    checks = [oracle_check(con, truth_dir, as_of, horizon_days) for as_of in default_cutoffs(horizon_days=horizon_days)]
    for c in checks:
        lines.append(
            f"{c.as_of.isoformat():12} {c.visitors:>10,} {c.buyers:>7,} {c.mean_true_probability:>12.5f} "
            f"{c.observed_rate:>9.5f} {c.oracle_roc_auc:>11.3f}"
        )
    expected = sum(c.mean_true_probability * c.visitors for c in checks)
    observed = sum(c.buyers for c in checks)
    z = (observed - expected) / max(expected, 1e-9) ** 0.5  # Poisson bound on the variance of a sum of Bernoullis
    lines.append(
        f"\nall cut-offs: {observed:,.0f} buyers observed, {expected:,.1f} expected from the truth (z = {z:+.2f}); "
        f"mean oracle ROC AUC {np.mean([c.oracle_roc_auc for c in checks]):.3f} (target 0.85-0.95 at scale 1)"
    )
    outside = [f.name for f in figures if not f.ok] + ([] if abs(z) <= 3 else ["truth vs labels"])
    lines.append("outside tolerance: " + ", ".join(outside) if outside else "every figure within its tolerance")
    return lines, not outside
