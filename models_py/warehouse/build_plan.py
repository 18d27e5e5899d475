"""Which as-of dates a dbt build covers, written into ``ml.build_plan`` for the models to read.

The training spine is fixed: cut-offs on ``PROPENSITY_CUTOFF_ANCHOR`` plus whole ``PROPENSITY_CUTOFF_STEP_DAYS``
steps, whatever the weekday of the night. A spine date's features are built once, on its own night (or by the first
run for the past ones); its labels once its whole label window has landed. Tonight's date is built every night.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb

from models_py.config import Settings
from models_py.errors import BadInputError
from models_py.shop_calendar import DAY_MS, EPOCH
from models_py.transaction import transaction
from models_py.warehouse.schema import BUILD_PLAN, BUILD_VISITOR_SPLITS, DERIVED_SCHEMAS, LAST_BUILD

FEATURES_MART = "marts.fct_visitor_features"
LABELS_MART = "marts.fct_visitor_labels"
VISITOR_TOTALS = "intermediate.int_visitor_totals_folded"  # one row a visitor seen before each cut-off
ROLLUP_OF_VISITOR_DAYS = "intermediate.int_visitor_days_rolled_up"  # the last daily rollup a build makes
ROLLUP_MODELS = ("+int_visitor_days_rolled_up", "+int_visitor_category_days_rolled_up")  # every daily rollup
WARM_UP_DAYS = 30  # the longest feature window: earlier cut-offs would see truncated windows


@dataclass
class BuildPlan:
    features: list[date] = field(default_factory=list)
    labels: list[date] = field(default_factory=list)
    scored: date | None = None  # tonight's date: every visitor, always (a past cut-off may keep a sample)

    def __bool__(self) -> bool:
        return bool(self.features or self.labels)


def loaded_days(con: duckdb.DuckDBPyConnection, cfg: Settings) -> tuple[date, date]:
    """The first and the last shop day with events in the warehouse."""
    first_ms, last_ms = con.execute("select min(timestamp), max(timestamp) from raw.events").fetchone()
    if last_ms is None:
        raise BadInputError("raw.events is empty: nothing to score (land event files in data/landing/ first)")
    return cfg.calendar.shop_day(first_ms), cfg.calendar.shop_day(last_ms)


def latest_as_of(con: duckdb.DuckDBPyConnection, cfg: Settings) -> date:
    """The day after the last landed shop day: tonight's scores use every complete day."""
    return loaded_days(con, cfg)[1] + timedelta(days=1)


def check_servable(con: duckdb.DuckDBPyConnection, cfg: Settings, as_of: date) -> None:
    """An as-of date the job can score: after the first landed day (some events before it) and no later than the
    day after the last landed one (no events missing). Checked before anything is built."""
    first, last = loaded_days(con, cfg)
    if as_of <= first:
        raise BadInputError(
            f"as-of date {as_of} is not after the first landed shop day ({first}): no events come before it, so "
            f"there is nothing to score. Use a date from {first + timedelta(days=1)} to {last + timedelta(days=1)}"
        )
    if as_of > last + timedelta(days=1):
        raise BadInputError(
            f"as-of date {as_of} is after the last landed shop day + 1 ({last + timedelta(days=1)}): its features "
            "would miss events that have not arrived yet"
        )


def drop_derived(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what dbt derived from the events (rollups, folded state, marts): the next build makes it anew, for the
    dates it plans. After events were taken out, or when a new feature needs its history. (On Spark, after
    ``dbt.drop_derived_on_spark``: this drops the views of Spark's tables.)"""
    con.execute(f"delete from {LAST_BUILD}")
    for derived in DERIVED_SCHEMAS:
        con.execute(f"drop schema if exists {derived} cascade")


def spine(cfg: Settings, first: date, last: date) -> list[date]:
    """The spine's cut-offs in [first, last]."""
    step = cfg.cutoff_step_days
    day = first + timedelta(days=(cfg.cutoff_anchor - first).days % step)
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=step)
    return out


def training_spine(cfg: Settings, first_day: date, as_of: date) -> list[date]:
    """The spine dates a night needs: the training and validation cut-offs whose labels are complete by ``as_of``,
    and the later ones whose labels are still to come (they train the next models)."""
    dates = spine(cfg, first_day + timedelta(days=1), as_of)
    labelled = [d for d in dates if d + timedelta(days=cfg.horizon_days) <= as_of]
    keep_from = labelled[-(cfg.training_cutoffs + 1)] if len(labelled) > cfg.training_cutoffs else dates[:1]
    return [d for d in dates if d >= keep_from] if dates else []


def built(con: duckdb.DuckDBPyConnection, table: str) -> set[date]:
    try:
        return {r[0] for r in con.execute(f"select distinct as_of_date from {table}").fetchall()}
    except duckdb.CatalogException:
        return set()
    except duckdb.IOException as exc:  # a view of Spark's table whose files were dropped: nothing built
        if "No files found" in str(exc):
            return set()
        raise


def _plan(con: duckdb.DuckDBPyConnection, cfg: Settings, wanted: list[date], tonight: date | None) -> BuildPlan:
    """Features for the wanted dates the mart lacks (and tonight's, always), labels for those whose window is in."""
    _, last_day = loaded_days(con, cfg)
    features = sorted(({d for d in wanted if d not in built(con, FEATURES_MART)}) | ({tonight} if tonight else set()))
    have_features = built(con, FEATURES_MART) | set(features)
    labelled = built(con, LABELS_MART)
    complete = [d for d in wanted if d + timedelta(days=cfg.horizon_days - 1) <= last_day]
    return BuildPlan(features, [d for d in complete if d in have_features and d not in labelled], tonight)


def plan_night(con: duckdb.DuckDBPyConnection, cfg: Settings, as_of: date) -> BuildPlan:
    first_day, _ = loaded_days(con, cfg)
    return _plan(con, cfg, training_spine(cfg, first_day, as_of), as_of)


def plan_backtest(
    con: duckdb.DuckDBPyConnection, cfg: Settings, chosen: list[date] | None = None
) -> tuple[list[date], BuildPlan]:
    """Every spine date with a full feature window, up to the latest as-of date, and any chosen test cut-offs
    (month ends, say), which must have a full feature window too."""
    first_day, _ = loaded_days(con, cfg)
    first, last = first_day + timedelta(days=WARM_UP_DAYS), latest_as_of(con, cfg)
    outside = [d for d in chosen or [] if not first <= d <= last]
    if outside:
        raise BadInputError(
            f"cut-off(s) {', '.join(map(str, outside))} outside {first}..{last}, the dates with a full "
            f"{WARM_UP_DAYS}-day feature window in the loaded events"
        )
    dates = sorted(set(spine(cfg, first, last)) | set(chosen or []))
    return dates, _plan(con, cfg, dates, None)


def samples_visitors(plan: BuildPlan) -> bool:
    """Whether the plan builds a past cut-off, which a large shop samples (see ``write``)."""
    return any(d != plan.scored for d in plan.features)


def write(
    con: duckdb.DuckDBPyConnection, cfg: Settings, plan: BuildPlan, visitors: int = 0, splits: list[int] | None = None
) -> None:
    """Tell dbt which as-of dates its next build makes (the models read ml.build_plan when they compile), which
    share of the shop's ``visitors`` a past cut-off keeps: all, or a uniform sample of about
    PROPENSITY_MAX_CUTOFF_VISITORS (training reads no more of a cut-off); tonight's scored date keeps everyone. And
    the visitor ids where the feature mart's insert starts a new range (see ``visitor_splits``)."""
    share = min(1.0, cfg.max_cutoff_visitors / visitors) if visitors else 1.0
    rows = [
        (d, (d - EPOCH).days, cfg.calendar.day_start_ms(d), d in plan.features, d in plan.labels,
         1.0 if d == plan.scored else share)
        for d in sorted(set(plan.features) | set(plan.labels))
    ]  # fmt: skip
    with transaction(con):
        con.execute(f"delete from {BUILD_PLAN}")
        if rows:
            con.executemany(
                f"""insert into {BUILD_PLAN} (as_of_date, as_of_day, cutoff_ms, builds_features, builds_labels,
                    visitor_share) values (?, ?, ?, ?, ?, ?)""",
                rows,
            )
        con.execute(f"delete from {BUILD_VISITOR_SPLITS}")
        if splits:
            con.executemany(f"insert into {BUILD_VISITOR_SPLITS} values (?)", [(k,) for k in splits])


def visitors_in_events(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """About how many visitors the events hold, and their lowest and highest id, in one pass over raw.events."""
    return con.execute(
        "select approx_count_distinct(visitorid), min(visitorid), max(visitorid) from raw.events"
    ).fetchone()


def known_visitors(
    con: duckdb.DuckDBPyConnection, in_events: tuple[int, int, int] | None = None
) -> tuple[int, int, int]:
    """How many visitors the warehouse knows and their lowest and highest id: from the newest folded totals (one
    row a visitor; tonight adds only the day's newcomers), or, before the first build, from the events
    (``in_events``, when the caller has read them already)."""
    try:
        known = con.execute(
            f"""select count(*), min(visitor_id), max(visitor_id) from {VISITOR_TOTALS}
                where as_of_day = (select max(as_of_day) from {VISITOR_TOTALS})"""
        ).fetchone()
    except duckdb.CatalogException:
        known = (0, None, None)
    return known if known[0] else in_events or visitors_in_events(con)


def visitor_splits(
    con: duckdb.DuckDBPyConnection,
    cfg: Settings,
    plan: BuildPlan,
    rows_per_insert: int,
    in_events: tuple[int, int, int] | None = None,
) -> list[int]:
    """The visitor ids at which the feature mart's insert starts a new range, so that a range's rows (its visitors
    on each of the plan's cut-offs, a past cut-off's sample of them) stay within ``rows_per_insert``: a scale-100
    night's one insert spilled ~30 GB to disk. None when one insert fits, as up to scale 10. The ranges split the
    known ids evenly; the first is open below and the last above, so tonight's new visitors belong to one.
    ``in_events``: ``visitors_in_events``, when the build has read it (a first night's earlier passes fold fewer
    visitors than its scored date has)."""
    known, first_id, last_id = known_visitors(con, in_events)
    visitors = max(in_events[0] if in_events else 0, known)
    sampled = min(visitors, cfg.max_cutoff_visitors)
    rows = sum(visitors if d == plan.scored else sampled for d in plan.features)
    ranges = min(-(-rows // max(rows_per_insert, 1)), last_id - first_id + 1) if rows else 1
    return [first_id + (last_id - first_id + 1) * k // ranges for k in range(1, ranges)]


def passes(plan: BuildPlan, visitors: int, max_visitor_cutoffs: int) -> list[BuildPlan]:
    """The plan in passes of at most ``max_visitor_cutoffs`` visitors x cut-offs each, oldest dates first: a large
    shop's first night folds its state forward a few cut-offs at a time instead of holding all in memory at once.
    Each label date goes with the pass that builds its features (or the first, if they exist already)."""
    per_pass = max(1, max_visitor_cutoffs // max(visitors, 1))
    if len(plan.features) <= per_pass:
        return [plan]
    chunks = [plan.features[i : i + per_pass] for i in range(0, len(plan.features), per_pass)]
    out, assigned = [], set()
    for chunk in chunks:
        labels = [d for d in plan.labels if d <= chunk[-1] and d not in assigned]
        assigned.update(labels)
        out.append(BuildPlan(chunk, labels, plan.scored))
    out[-1].labels += [d for d in plan.labels if d not in assigned]
    return out


def rollup_chunks(con: duckdb.DuckDBPyConnection, cfg: Settings, max_events: int) -> list[tuple[int, int]]:
    """The chunks of whole shop days in which a build rolls up a history of more than ``max_events`` events not yet
    rolled up (a large shop's first night), oldest first, as (the first day after the chunk, its events); the last
    chunk is left to the build itself. Empty when the days to roll up fit in one build, as every night's do."""
    if cfg.engine != "duckdb":
        return []  # Spark holds its rollups, and its memory, itself
    try:
        since = con.execute(f"select max(shop_day) from {ROLLUP_OF_VISITOR_DAYS}").fetchone()[0]
    except duckdb.CatalogException:
        since = None
    from_ms = 0 if since is None else cfg.calendar.day_start_ms(EPOCH + timedelta(days=since + 1))
    days = con.execute(
        f"""select {cfg.calendar.day_start_ms_sql("timestamp")} // {DAY_MS} as shop_day, count(*) from raw.events
            where timestamp >= ? group by 1 order by 1""",
        [from_ms],
    ).fetchall()
    chunks, events = [], 0
    for day, count in days:
        if events and events + count > max_events:
            chunks.append((day, events))
            events = 0
        events += count
    return chunks


def describe(plan: BuildPlan) -> str:
    def dates(ds: list[date]) -> str:
        return ", ".join(map(str, ds)) if len(ds) <= 4 else f"{len(ds)} dates {ds[0]}..{ds[-1]}"

    return f"features for {dates(plan.features) or 'no date'}; labels for {dates(plan.labels) or 'no date'}"
