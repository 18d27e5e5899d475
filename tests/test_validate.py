"""Validation gates: each suite catches what it is for, in SQL with the same verdicts as Great Expectations itself,
and a failing gate names the expectation and stops the night."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from models_py.errors import GateFailed
from models_py.ops.expectations import run_suite, run_with_gx
from models_py.ops.gates import raise_if_failed
from tests.helpers import cli, served_sha


def _in_sql_and_in_gx(name: str, frame: pd.DataFrame, params: dict) -> list:
    """The suite on the frame in DuckDB SQL and in Great Expectations: same verdicts and counts, or the test fails."""
    con = duckdb.connect()
    con.register("rows", frame)
    sql = run_suite(con, name, "rows", params)
    gx = run_with_gx(name, frame, params)

    def verdicts(outcomes: list) -> list:  # GE reports in its own order, with its own number types
        which = ("column", "column_A", "column_B", "column_list")
        return sorted((o.expectation, json.dumps({k: o.kwargs.get(k) for k in which}), o.success,
                       o.unexpected_count or 0) for o in outcomes)  # fmt: skip

    assert verdicts(sql) == verdicts(gx)
    return sql


def test_scores_outside_zero_one_or_missing_visitors_fail_by_name() -> None:
    frame = pd.DataFrame({"visitor_id": [1, 2, 3], "propensity": [0.1, 1.5, 0.2], "decile": [1, 2, 3]})
    outcomes = _in_sql_and_in_gx("visitor_scores", frame, {"eligible_visitors": 4, "min_mean": 0.0, "max_mean": 1.0})
    failed = {o.expectation for o in outcomes if not o.success}
    assert failed == {"expect_column_values_to_be_between", "expect_table_row_count_to_equal"}
    with pytest.raises(GateFailed, match=r"visitor_scores\.expect_column_values_to_be_between.*1\.5"):
        raise_if_failed(outcomes, "scores")
    good = frame.assign(propensity=[0.1, 0.5, 0.2])
    assert all(o.success for o in _in_sql_and_in_gx("visitor_scores", good, {"eligible_visitors": 3, "min_mean": 0.0,
                                                                               "max_mean": 1.0}))  # fmt: skip


def test_feature_row_count_outside_the_tolerance_fails() -> None:
    frame = pd.DataFrame(
        {"visitor_id": [1, 2], "days_since_last_event": [0, 3], "hours_since_last_event": [1.0, 80.0],
         "add_to_cart_rate_7d": [0.0, 0.5], "total_events_30d": [1, 4], "total_events_all": [1, 9]}
    )  # fmt: skip
    assert all(o.success for o in _in_sql_and_in_gx("visitor_features", frame, {"min_rows": 1, "max_rows": 3}))
    shrunk = _in_sql_and_in_gx("visitor_features", frame, {"min_rows": 100, "max_rows": 130})
    assert [o.expectation for o in shrunk if not o.success] == ["expect_table_row_count_to_be_between"]
    repeated = _in_sql_and_in_gx("visitor_features", pd.concat([frame, frame]), {"min_rows": 1, "max_rows": 9})
    assert [o.expectation for o in repeated if not o.success] == ["expect_column_values_to_be_unique"]


def test_landing_rows_of_another_day_or_doubled_or_with_stray_transaction_ids_fail() -> None:
    day_start, day_end = 1442548800000, 1442548800000 + 86_400_000
    rows = [(day_start + i, i % 7, "view", i, None, day_start, day_end, "f") for i in range(300)]
    frame = pd.DataFrame(rows, columns=["timestamp", "visitorid", "event", "itemid", "transactionid",
                                        "file_day_start_ms", "file_day_end_ms", "file_name"])  # fmt: skip
    frame["transactionid"] = frame["transactionid"].astype("Int64")
    params = {"now_ms": day_end + 10**9}
    assert all(o.success for o in _in_sql_and_in_gx("raw_events", frame, params))
    broken = pd.concat([frame, frame.head(10)], ignore_index=True)  # 10 doubled rows: over the 1% allowed
    broken.loc[0, "timestamp"] = day_start - 1  # the day before the file's day
    broken.loc[1, "transactionid"] = 5  # a transaction id on a view
    failed = {o.expectation for o in _in_sql_and_in_gx("raw_events", broken, params) if not o.success}
    assert failed == {"expect_column_pair_values_a_to_be_greater_than_b", "expect_column_values_to_be_null",
                      "expect_compound_columns_to_be_unique"}  # fmt: skip


def test_an_order_line_repeated_in_its_order_is_a_quantity_but_a_doubled_click_is_a_duplicate() -> None:
    day_start, day_end = 1442548800000, 1442548800000 + 86_400_000
    # An order system's export: 100 orders, every fifth with the same item twice (two units).
    lines = [(day_start + i, i, "transaction", 7, i, day_start, day_end, "f") for i in range(100)]
    lines += [line for line in lines if line[1] % 5 == 0]
    columns = ["timestamp", "visitorid", "event", "itemid", "transactionid", "file_day_start_ms", "file_day_end_ms",
               "file_name"]  # fmt: skip
    orders = pd.DataFrame(lines, columns=columns).astype({"transactionid": "Int64"})
    params = {"now_ms": day_end + 10**9}
    assert all(o.success for o in _in_sql_and_in_gx("raw_events", orders, params))
    clicks = [(t, v, "view", item, pd.NA, *rest) for t, v, _, item, _, *rest in lines]
    doubled = pd.DataFrame(clicks, columns=columns).astype({"transactionid": "Int64"})
    failed = {o.expectation for o in _in_sql_and_in_gx("raw_events", doubled, params) if not o.success}
    assert failed == {"expect_compound_columns_to_be_unique"}


@pytest.mark.parametrize(
    ("timestamp", "code", "named"),
    [
        # 2015-08-01: a day already loaded, refused by ingest before any gate.
        (1438398000000, 2, "line 2: an event of shop day 2015-08-01, but the warehouse already holds every day"),
        # 2015-09-19: a new day, but not the file's: only the raw-events gate can tell.
        (1442631600000, 4, "raw_events.expect_column_pair_values_a_to_be_greater_than_b"),
    ],
    ids=["a-loaded-day", "another-new-day"],
)
def test_a_day_file_holding_another_days_events_stops_the_night_and_publishes_nothing(
    own_world, timestamp: int, code: int, named: str
) -> None:
    cfg = own_world.cfg
    served = served_sha(cfg)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        rows = wh.execute("select count(*) from raw.events").fetchone()[0]
    (cfg.landing_dir / "events_2015-09-18.csv").write_text(
        f"timestamp,visitorid,event,itemid,transactionid\n{timestamp},1,view,2,\n"
    )
    result = cli("nightly")
    assert result.returncode == code, result.stderr
    assert named in result.stderr and "events_2015-09-18.csv, line 2" in result.stderr  # the file and the line
    assert served_sha(cfg) == served
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        assert wh.execute("select count(*) from raw.events").fetchone()[0] == rows


def test_repeated_keys_are_counted_as_a_group_by_counts_them_nulls_included() -> None:
    """The uniqueness expectations count a one-column key by sorted neighbours, not by grouping: every row of a
    repeated value counts (a repeated null too, as in a group by), whatever the order of the rows."""
    from models_py.ops.expectations import _unique

    con = duckdb.connect()
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(0, 30))
        values = pd.array([None if rng.random() < 0.2 else int(v) for v in rng.integers(0, 8, n)], dtype="Int64")
        con.register("keys", pd.DataFrame({"v": values, "w": rng.integers(0, 2, n)}))
        for key in ("v", "v, w"):
            grouped = con.execute(
                f"select coalesce(sum(n), 0) from (select count(*) as n from keys group by {key} having n > 1)"
            ).fetchone()[0]
            assert _unique(key.split(", "))(con, "keys", {})[1] == grouped, (values, key)
