"""The shop's calendar: days break at 03:00 UTC (the shop's local midnight), traffic has a weekly and daily cycle."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

SHOP_START = datetime(2015, 5, 3, 3, 0, tzinfo=UTC)
SHOP_START_MS = int(SHOP_START.timestamp() * 1000)
DAY_MS = 86_400_000
DAY_OFFSET_HOURS = 3  # local midnight is 03:00 UTC

# Relative traffic by local weekday (Monday first) and by local hour: a weekend dip and an evening peak.
WEEKDAY_WEIGHT = np.array([1.0, 1.02, 1.0, 0.98, 0.93, 0.78, 0.82])
HOUR_WEIGHT = np.array(
    [0.45, 0.30, 0.22, 0.18, 0.18, 0.25, 0.40, 0.60, 0.80, 0.92, 1.00, 1.02,
     1.00, 1.00, 1.00, 1.02, 1.05, 1.10, 1.20, 1.30, 1.35, 1.25, 1.00, 0.70]
)  # fmt: skip


def shop_day(timestamp_ms: int) -> date:
    """The local calendar day an event belongs to."""
    return (datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC) - timedelta(hours=DAY_OFFSET_HOURS)).date()


def day_start_ms(day: date) -> int:
    """The instant (ms, UTC) a local shop day begins: the cut-off for an as-of date."""
    return int(datetime(day.year, day.month, day.day, DAY_OFFSET_HOURS, tzinfo=UTC).timestamp() * 1000)


def day_index(day: date) -> int:
    return (day - SHOP_START.date()).days


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


MAX_WEIGHT = float(WEEKDAY_WEIGHT.max() * HOUR_WEIGHT.max())
MEAN_WEIGHT = float(WEEKDAY_WEIGHT.mean() * HOUR_WEIGHT.mean())
