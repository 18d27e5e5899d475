"""Validation gates: each suite catches what it is for, and a failing gate names the expectation."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from models_py.errors import GateFailed
from models_py.ops.gates import raise_if_failed, run_suite


def test_scores_outside_zero_one_or_missing_visitors_fail_by_name() -> None:
    frame = pd.DataFrame({"visitor_id": [1, 2, 3], "propensity": [0.1, 1.5, 0.2], "decile": [1, 2, 3]})
    outcomes = run_suite("visitor_scores", frame, {"eligible_visitors": 4, "min_mean": 0.0, "max_mean": 1.0})
    failed = {o.expectation for o in outcomes if not o.success}
    assert failed == {"expect_column_values_to_be_between", "expect_table_row_count_to_equal"}
    with pytest.raises(GateFailed, match=r"visitor_scores\.expect_column_values_to_be_between.*1\.5"):
        raise_if_failed(outcomes, "scores")


def test_feature_row_count_outside_the_tolerance_fails() -> None:
    frame = pd.DataFrame(
        {"visitor_id": [1, 2], "days_since_last_event": [0, 3], "hours_since_last_event": [1.0, 80.0],
         "add_to_cart_rate_7d": [0.0, 0.5], "total_events_30d": [1, 4], "total_events_all": [1, 9]}
    )  # fmt: skip
    ok = run_suite("visitor_features", frame, {"min_rows": 1, "max_rows": 3})
    assert all(o.success for o in ok)
    shrunk = run_suite("visitor_features", frame, {"min_rows": 100, "max_rows": 130})
    assert [o.expectation for o in shrunk if not o.success] == ["expect_table_row_count_to_be_between"]


def test_a_day_file_holding_another_days_events_stops_the_night_and_publishes_nothing(own_world) -> None:
    cfg = own_world.cfg
    served = hashlib.sha256(cfg.serving_path.read_bytes()).hexdigest()
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        rows = wh.execute("select count(*) from raw.events").fetchone()[0]
    # Well-formed rows, but dated 2015-08-01 in the file for 2015-09-18: only the gate can tell.
    bad = cfg.landing_dir / "events_2015-09-18.csv"
    bad.write_text("timestamp,visitorid,event,itemid,transactionid\n1438398000000,1,view,2,\n")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "jobs", "nightly"], capture_output=True, text=True, timeout=600, env=os.environ
        )
    finally:
        bad.unlink()
    assert result.returncode == 4, result.stderr
    assert "raw_events.expect_column_pair_values_a_to_be_greater_than_b" in result.stderr
    assert hashlib.sha256(cfg.serving_path.read_bytes()).hexdigest() == served
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        assert wh.execute("select count(*) from raw.events").fetchone()[0] == rows
        failed = wh.execute(
            "select count(*) from ml.validation_results where suite = 'raw_events' and not success"
        ).fetchone()[0]
    assert failed >= 1


def test_suite_columns_lists_what_the_features_gate_reads() -> None:
    from models_py.ops.gates import suite_columns

    assert suite_columns("visitor_features") == [
        "visitor_id", "days_since_last_event", "hours_since_last_event", "add_to_cart_rate_7d", "total_events_30d",
        "total_events_all",
    ]  # fmt: skip
