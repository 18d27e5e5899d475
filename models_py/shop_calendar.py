"""The shop's calendar: when a shop day starts, which instant an as-of date cuts at, and the cut-off spines.

Retail Rocket's days break at 03:00 UTC (the shop's local midnight); another shop sets
PROPENSITY_DAY_START_HOUR_UTC. The same hour reaches dbt as the var ``day_start_hour_utc``, so the SQL and the
Python side cut days at the same instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class ShopCalendar:
    day_start_hour_utc: int = 3

    def day_start_ms(self, day: date) -> int:
        """The instant (ms, UTC) a shop day begins: the cut-off of that as-of date."""
        return (day - EPOCH).days * DAY_MS + self.day_start_hour_utc * HOUR_MS

    def shop_day(self, timestamp_ms: int) -> date:
        """The shop day an event at ``timestamp_ms`` belongs to."""
        return EPOCH + timedelta(days=(timestamp_ms - self.day_start_hour_utc * HOUR_MS) // DAY_MS)

    def day_start_ms_array(self, timestamps_ms):
        """``day_start_ms(shop_day(t))`` for a numpy array of timestamps, column-wise."""
        offset = self.day_start_hour_utc * HOUR_MS
        return (timestamps_ms - offset) // DAY_MS * DAY_MS + offset

    def day_start_ms_sql(self, column: str) -> str:
        """The same in DuckDB SQL, for a column of epoch-millisecond timestamps (from 1970 on)."""
        offset = self.day_start_hour_utc * HOUR_MS
        return f"(({column} - {offset}) // {DAY_MS} * {DAY_MS} + {offset})"

    def dbt_vars(self) -> dict[str, int]:
        return {"day_start_hour_utc": self.day_start_hour_utc}


def utc_now_naive() -> datetime:
    """Now in UTC without a time zone: what the warehouse's timestamp columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)
