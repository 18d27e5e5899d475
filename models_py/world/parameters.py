"""Knobs of the simulated shop. Defaults were tuned so that scale 1 matches the real Retail Rocket log's shape."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from models_py.errors import BadInputError


@dataclass(frozen=True)
class ShopParameters:
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
    taste_share: float = 0.7  # views that come from the visitor's taste category rather than the popular items
    arrival_taste_share: float = 0.7  # the same in the arrival session: how much a first visit reveals of taste
    # the hidden purchase process
    episode_rate_median: float = 0.0002
    episode_rate_sigma: float = 0.2
    episode_activity_link: float = 0.6
    episode_mean_days: float = 1.0
    episode_end_rate_sigma: float = 0.3
    conversion_median: float = 0.30
    conversion_sigma: float = 0.15
    category_conversion_sigma: float = 1.0
    loyalty_multiplier_median: float = 120.0  # a first purchase multiplies the episode rate by about this
    loyalty_sigma: float = 0.3
    max_episode_rate: float = 0.25
    arrive_in_market_probability: float = 0.012
    intent_sessions_per_day: float = 6.0
    views_per_intent_session: float = 1.8
    views_per_purchase_session: float = 2.0
    target_view_share: float = 0.5
    intent_cart_probability: float = 0.11
    purchase_cart_probability: float = 0.9
    extra_item_cart_probability: float = 0.8
    extra_items_per_purchase: float = 0.35
    view_gap_seconds: float = 50.0

    def with_overrides(self, assignments: list[str]) -> ShopParameters:
        """A copy with ``name=value`` assignments applied (``propensity simulate --param``), each checked."""
        known = {f.name: f.type for f in fields(self)}
        changes: dict[str, float | int] = {}
        for assignment in assignments:
            name, sep, value = assignment.partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise BadInputError(
                    f"--param {assignment!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(known))}"
                )
            kind = int if known[name] in (int, "int") else float
            try:
                changes[name] = kind(value)
            except ValueError:
                raise BadInputError(
                    f"--param {assignment!r}: {value!r} is not a{'n integer' if kind is int else ' number'}"
                ) from None
        return replace(self, **changes)
