"""The feature and label marts, value for value against straight queries over the events, after a first build and
after a second night that only folded one day in; and point in time, with a positive control."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb

from models_py.config import settings
from models_py.warehouse import build_plan, dbt
from models_py.warehouse.connection import session

SQL = Path(__file__).parent / "sql"
FEATURES, LABELS = "marts.fct_visitor_features", "marts.fct_visitor_labels"


def _differences(con: duckdb.DuckDBPyConnection, table: str, reference_sql: str, horizon_days: int = 7) -> int:
    """Rows of the mart and of the straight query that the other lacks, over every as-of date the mart holds."""
    con.execute(
        f"""create or replace temp table reference_cutoffs as
            select distinct as_of_date, cutoff_ms, cutoff_ms + {horizon_days} * 86400000::bigint as label_end_ms
            from (select as_of_date, (as_of_date - date '1970-01-01') * 86400000::bigint + 10800000 as cutoff_ms
                  from {table})"""
    )
    con.execute("create or replace temp table reference as " + (SQL / reference_sql).read_text())
    columns = ", ".join(r[0] for r in con.execute("describe reference").fetchall())
    count = "select count(*) from (select {c} from {a} except all select {c} from {b})"
    missing = con.execute(count.format(c=columns, a="reference", b=table)).fetchone()[0]
    extra = con.execute(count.format(c=columns, a=table, b="reference")).fetchone()[0]
    return missing + extra


def test_every_feature_of_a_first_build_equals_the_straight_query(pipeline) -> None:
    cfg, _ = pipeline
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        dates = con.execute(f"select count(distinct as_of_date) from {FEATURES}").fetchone()[0]
        assert dates >= 8
        # Two builds that agreed on a column of nulls or of one value would compare nothing: every feature varies.
        columns = [r[0] for r in con.execute(f"describe {FEATURES}").fetchall()]
        distinct = con.execute(
            f"select {', '.join(f'count(distinct {c})' for c in columns)} from {FEATURES}"
        ).fetchone()
        assert [c for c, n in zip(columns, distinct, strict=True) if n < 2] == []
        # Counts stay 64-bit: a 128-bit sum costs every reader a slow decode, and Spark has no such type.
        types = dict(con.execute(f"select column_name, column_type from (describe {FEATURES})").fetchall())
        assert [c for c, t in types.items() if t == "HUGEINT"] == [] and types["total_events_all"] == "BIGINT"
        assert _differences(con, FEATURES, "reference_features.sql") == 0
        assert _differences(con, LABELS, "reference_labels.sql") == 0


def test_a_second_night_folds_in_one_day_and_still_equals_the_straight_query(two_nights) -> None:
    cfg, first, second, plan = two_nights
    assert second.as_of == first.as_of + timedelta(days=1)
    # The second night built its own date's features and the labels whose window just closed, nothing else.
    assert plan == [(second.as_of - timedelta(days=7), False, True), (second.as_of, True, False)]
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        assert _differences(con, FEATURES, "reference_features.sql") == 0
        assert _differences(con, LABELS, "reference_labels.sql") == 0
        # Retention: a folded state keeps only the newest cut-offs (the next fold's base), not one per night.
        kept = {
            r[0]
            for r in con.execute("select distinct as_of_date from intermediate.int_visitor_totals_folded").fetchall()
        }
        assert kept == {first.as_of, second.as_of}


def test_features_see_nothing_at_or_after_the_cutoff_and_everything_before(own_world) -> None:
    """Plant events exactly at and after a past cut-off and rebuild it from the raw events: nothing moves. Then plant
    one event a millisecond before it: its visitor's features move (so the first check could have failed)."""
    cfg = own_world.cfg

    def rebuild_and_read(as_of: date) -> list[tuple]:
        with session(cfg) as con:
            build_plan.drop_derived(con)  # everything from the raw events again
        dbt.build(cfg, build_plan.BuildPlan(features=[as_of]))
        with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
            return con.execute(f"select * from {FEATURES} where as_of_date = ? order by visitor_id", [as_of]).fetchall()

    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        as_of = con.execute(f"select min(as_of_date) from {FEATURES}").fetchone()[0]
        visitor = con.execute(f"select min(visitor_id) from {FEATURES} where as_of_date = ?", [as_of]).fetchone()[0]
    before = rebuild_and_read(as_of)
    cutoff = cfg.calendar.day_start_ms(as_of)

    def plant(sql: str) -> None:
        with duckdb.connect(str(cfg.warehouse_path)) as con:
            con.execute(sql, [cutoff, as_of] if "?" in sql else [])

    plant(
        f"""insert into raw.events
            select ? + k * 3600000, visitor_id, e, 1, case when e = 'transaction' then 990000 + k end
            from (select visitor_id from {FEATURES} where as_of_date = ? limit 50),
                 range(0, 3) r(k), (values ('view'), ('addtocart'), ('transaction')) v(e)"""
    )
    assert rebuild_and_read(as_of) == before
    plant(f"insert into raw.events values ({cutoff - 1}, {visitor}, 'addtocart', 1, null)")
    after = rebuild_and_read(as_of)
    changed = [a for a, b in zip(after, before, strict=True) if a != b]
    assert [row[1] for row in changed] == [visitor]


def test_the_dbt_unit_tests_pass(own_world) -> None:
    """dbt's unit tests (sessions across midnight, the fold's cut-off edge, window edges, first times, label
    window) check the SQL itself; the nightly build leaves them out, so they run here."""
    from models_py.warehouse.dbt import run_dbt

    lines: list[str] = []
    run_dbt(own_world.cfg, ["test", "--select", "test_type:unit"], lines.append)
    assert sum(" PASS " in line or "PASS " in line for line in lines) >= 5, lines


def test_retention_keeps_the_spine_and_the_newest_nights_of_features(own_world, monkeypatch) -> None:
    """With one night kept besides the spine, a past non-spine night a build was asked for (a backtest's chosen
    cut-off) stays for whoever asked, and the next build leaves it out again."""
    cfg = own_world.cfg
    monkeypatch.setenv("PROPENSITY_KEEP_NIGHTLY_FEATURES", "1")
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        newest = con.execute(f"select max(as_of_date) from {FEATURES}").fetchone()[0]
    off_spine = newest - timedelta(days=3)

    def dates_in_mart() -> list:
        with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
            return [r[0] for r in con.execute(f"select distinct as_of_date from {FEATURES} order by 1").fetchall()]

    dbt.build(settings(), build_plan.BuildPlan(features=[off_spine]))
    assert off_spine in dates_in_mart()
    dbt.build(settings(), build_plan.BuildPlan(features=[newest]))
    dates = dates_in_mart()
    assert off_spine not in dates and newest in dates
    assert all((d - cfg.cutoff_anchor).days % cfg.cutoff_step_days == 0 for d in dates)


def test_a_longer_window_is_a_setting_and_counts_exactly_its_days(own_world, monkeypatch) -> None:
    monkeypatch.setenv("PROPENSITY_FEATURE_WINDOWS_DAYS", "1,7,30,90")
    cfg = settings()
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        newest = con.execute(f"select max(as_of_date) from {FEATURES}").fetchone()[0]
    dbt.build(cfg, build_plan.BuildPlan(features=[newest]))
    cutoff_ms = cfg.calendar.day_start_ms(newest)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        wrong, longer = con.execute(
            f"""with straight as (
                    select visitorid as visitor_id, count(*) as events, count(distinct itemid) as items
                    from raw.events where timestamp >= ? - 90 * 86400000::bigint and timestamp < ? group by 1)
                select count(*) filter (where f.total_events_90d <> coalesce(s.events, 0)
                                           or f.num_unique_items_90d <> coalesce(s.items, 0)),
                       count(*) filter (where f.total_events_90d > f.total_events_30d)
                from {FEATURES} f left join straight s using (visitor_id) where f.as_of_date = ?""",
            [cutoff_ms, cutoff_ms, newest],
        ).fetchone()
    assert wrong == 0 and longer > 0


def test_a_feature_mart_inserted_in_visitor_ranges_equals_one_insert(own_world, monkeypatch) -> None:
    """A night with more visitors than one insert may join (PROPENSITY_MAX_VISITORS_PER_INSERT, set from a large
    shop's memory) inserts its features range by range: the same rows, no visitor lost at a range's edge or twice."""
    cfg = own_world.cfg
    read = f"select * from {FEATURES} where as_of_date = ? order by visitor_id"
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        newest = con.execute(f"select max(as_of_date) from {FEATURES}").fetchone()[0]
        one_insert = con.execute(read, [newest]).fetchall()
    monkeypatch.setenv("PROPENSITY_MAX_VISITORS_PER_INSERT", str(len(one_insert) // 3))
    dbt.build(settings(), build_plan.BuildPlan(features=[newest], scored=newest))
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        splits = [r[0] for r in con.execute("select * from ml.build_visitor_splits order by 1").fetchall()]
        ranged = con.execute(read, [newest]).fetchall()
        # Each insert appends its range after the previous one's: the ranges were inserted one by one, all non-empty.
        range_number = " + ".join(f"cast(visitor_id >= {k} as integer)" for k in splits)
        ranges = con.execute(
            f"""select {range_number or 0}, min(rowid), max(rowid) from {FEATURES} where as_of_date = ?
                group by 1 order by 1""",
            [newest],
        ).fetchall()
    assert len(splits) in (2, 3) and len(ranges) == len(splits) + 1
    assert all(earlier[2] < later[1] for earlier, later in zip(ranges, ranges[1:], strict=False))
    assert ranged == one_insert
