"""The simulated shop's clock: it opens 2015-05-03 at 03:00 UTC (its local midnight), and traffic has a weekly and a
daily cycle. Event times are drawn as inhomogeneous Poisson processes shaped by that cycle."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from models_py.shop_calendar import DAY_MS, ShopCalendar

SHOP_START = datetime(2015, 5, 3, 3, 0, tzinfo=UTC)
SHOP_START_MS = int(SHOP_START.timestamp() * 1000)
CALENDAR = ShopCalendar(day_start_hour_utc=SHOP_START.hour)
SECONDS = 1.0 / 86_400.0  # one second in days, the simulator's time unit

# Relative traffic by local weekday (Monday first) and by local hour: a weekend dip and an evening peak.
WEEKDAY_WEIGHT = np.array([1.0, 1.02, 1.0, 0.98, 0.93, 0.78, 0.82])
HOUR_WEIGHT = np.array(
    [0.45, 0.30, 0.22, 0.18, 0.18, 0.25, 0.40, 0.60, 0.80, 0.92, 1.00, 1.02,
     1.00, 1.00, 1.00, 1.02, 1.05, 1.10, 1.20, 1.30, 1.35, 1.25, 1.00, 0.70]
)  # fmt: skip
MAX_WEIGHT = float(WEEKDAY_WEIGHT.max() * HOUR_WEIGHT.max())
MEAN_WEIGHT = float(WEEKDAY_WEIGHT.mean() * HOUR_WEIGHT.mean())


def traffic_weight(t_days: np.ndarray) -> np.ndarray:
    """Relative traffic intensity at times given in days since SHOP_START (local midnight of day 0)."""
    day = np.floor(t_days).astype(np.int64)
    hour = np.floor((t_days - day) * 24).astype(np.int64).clip(0, 23)
    weekday = (day + SHOP_START.weekday()) % 7
    return WEEKDAY_WEIGHT[weekday] * HOUR_WEIGHT[hour]


def hourly_weights(days: int) -> np.ndarray:
    """Traffic weight of each hour of the simulated period, for drawing arrival times."""
    hours = (np.arange(days * 24) + 0.5) / 24.0
    return traffic_weight(hours)


def to_ms(t_days: np.ndarray) -> np.ndarray:
    """Simulator time (days since SHOP_START) as epoch milliseconds; 'never' (inf) becomes a far-off instant."""
    return SHOP_START_MS + np.floor(np.minimum(t_days, 1e5) * DAY_MS).astype(np.int64)


def poisson_times(
    rng: np.random.Generator, rate: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of inhomogeneous Poisson processes (mean ``rate`` per day, shaped by the traffic cycle).

    Returns (owner index, time) of the accepted points, by thinning candidates at the peak rate.
    """
    length = np.maximum(end - start, 0.0)
    peak = MAX_WEIGHT / MEAN_WEIGHT
    n = rng.poisson(rate * length * peak)
    owner = np.repeat(np.arange(rate.size), n)
    t = start[owner] + rng.random(owner.size) * length[owner]
    keep = rng.random(owner.size) * MAX_WEIGHT < traffic_weight(t)
    return owner[keep], t[keep]


def grouped_offsets(rng: np.random.Generator, counts: np.ndarray, mean_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Within each group of ``counts`` events: cumulative exponential gaps (days) from zero, and first-in-group."""
    gaps = rng.exponential(mean_gap_s * SECONDS, int(counts.sum()))
    cs = np.cumsum(gaps)
    starts = (np.cumsum(counts) - counts)[counts > 0]
    first = np.zeros(cs.size, dtype=bool)
    first[starts] = True
    return cs - np.repeat(cs[starts], counts[counts > 0]), first
