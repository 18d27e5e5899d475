"""Validation gates: the Great Expectations suites in expectations/, checked in SQL where the rows are (tonight's
landing files, tonight's features, tonight's scores), and their results kept in ml.validation_results.

A failing gate raises GateFailed, naming the expectation and a few offending values, before anything is written.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from models_py.config import Settings
from models_py.errors import GateFailed
from models_py.ops.expectations import Outcome, run_suite
from models_py.shop_calendar import DAY_MS, ShopCalendar


def record(con, run_id: str, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        con.execute(
            "insert into ml.validation_results (run_id, suite, expectation, kwargs_json, success, unexpected_count, "
            "sample_json) values (?, ?, ?, ?, ?, ?, ?)",
            [run_id, o.suite, o.expectation, json.dumps(o.kwargs, default=str), o.success, o.unexpected_count,
             json.dumps(o.sample, default=str)],
        )  # fmt: skip


def raise_if_failed(outcomes: list[Outcome], what: str) -> None:
    failed = [o for o in outcomes if not o.success]
    if failed:
        lines = [
            f"  {o.suite}.{o.expectation} {o.kwargs}: "
            + (f"{o.unexpected_count} unexpected, e.g. {o.sample}" if o.unexpected_count else f"observed {o.sample}")
            for o in failed
        ]
        raise GateFailed(f"validation gate failed on {what}:\n" + "\n".join(lines))


def _file_days(files: list[Path], calendar: ShopCalendar) -> pa.Table:
    """The shop day each of tonight's daily files may hold (any day for a file not named after a day)."""
    far_future = int(time.time() * 1000) + 10 * 365 * DAY_MS
    names, starts, ends = [], [], []
    for path in files:
        match = re.fullmatch(r"events_(\d{4}-\d{2}-\d{2})\.csv", path.name)
        start = calendar.day_start_ms(date.fromisoformat(match.group(1))) if match else 0
        names.append(path.name)
        starts.append(start)
        ends.append(start + DAY_MS if match else far_future)
    return pa.table(
        {
            "file_name": names,
            "file_day_start_ms": pa.array(starts, pa.int64()),
            "file_day_end_ms": pa.array(ends, pa.int64()),
        }
    )


def check_landing_files(con, run_id: str, calendar: ShopCalendar, rows: str, files: list[Path]) -> None:
    """The raw-events gate on tonight's staged rows (``rows``: a relation with file_name and line_number), before
    anything of them is loaded."""
    con.register("incoming_file_days", _file_days(files, calendar))
    con.execute(f"create temp view incoming_checked as select * from {rows} join incoming_file_days using (file_name)")
    try:
        outcomes = run_suite(
            con, "raw_events", "incoming_checked", {"now_ms": int(time.time() * 1000)},
            locate="file_name || ', line ' || line_number",
        )  # fmt: skip
    finally:
        con.execute("drop view incoming_checked")
        con.unregister("incoming_file_days")
    record(con, run_id, outcomes)
    raise_if_failed(outcomes, "tonight's landing files")


def landing_gate(con, cfg: Settings, run_id: str) -> Callable[[str, list[Path]], None]:
    """What ingest checks on tonight's staged rows before loading any (the nightly job and `propensity ingest`
    alike): the raw-events suite, then each new day's volume."""

    def gate(rows: str, files: list[Path]) -> None:
        check_landing_files(con, run_id, cfg.calendar, rows, files)
        check_day_volumes(con, cfg, run_id, rows)

    return gate


def check_day_volumes(con, cfg: Settings, run_id: str, rows: str) -> None:
    """Each new day's events against the same weekday of the four weeks before (their median, from two weeks of
    history on): a day far below its usual volume is a truncated or partial export, not a quiet day, until the
    operator says otherwise (PROPENSITY_DAY_VOLUME_MIN_RATIO=0 lets it through)."""
    if cfg.day_volume_min_ratio <= 0:
        return
    day_ms = cfg.calendar.day_start_ms_sql("timestamp")
    days = con.execute(f"select {day_ms} as day_ms, count(*) from {rows} group by 1 order by 1").fetchall()
    outcomes = []
    for day_ms, count in days:
        weeks = [day_ms - k * 7 * DAY_MS for k in range(1, 5)]
        usual = [
            con.execute("select count(*) from raw.events where timestamp >= ? and timestamp < ?",
                        [w, w + DAY_MS]).fetchone()[0]
            for w in weeks
        ]  # fmt: skip
        usual = [u for u in usual if u]
        if len(usual) < 2:
            continue
        ratio = count / float(np.median(usual))
        day = cfg.calendar.shop_day(day_ms)
        outcomes.append(Outcome("raw_events", "day_volume_against_same_weekday",
                                {"day": str(day), "min_ratio": cfg.day_volume_min_ratio},
                                ratio >= cfg.day_volume_min_ratio, None,
                                [f"{count:,} events on {day}, {ratio:.2f}x the median {float(np.median(usual)):,.0f} "
                                 f"of the same weekday in the weeks before"]))  # fmt: skip
    record(con, run_id, outcomes)
    raise_if_failed(outcomes, "tonight's day volumes (a truncated or partial export?)")


def check_features(con, cfg: Settings, run_id: str, as_of: date, previous: tuple[int, float | None] | None) -> int:
    """The features gate on tonight's rows of the mart; returns how many visitors the scores must cover."""
    if previous:
        low, high = int(previous[0] * (1 - cfg.row_count_tolerance)), int(previous[0] * (1 + cfg.row_count_tolerance))
    else:
        low, high = 1, 10**12
    rows = f"(select * from marts.fct_visitor_features where as_of_date = '{as_of.isoformat()}')"
    outcomes = run_suite(con, "visitor_features", rows, {"min_rows": low, "max_rows": high})
    record(con, run_id, outcomes)
    raise_if_failed(outcomes, f"features as of {as_of}")
    return con.execute(f"select count(*) from {rows}").fetchone()[0]


def check_scores(
    con,
    cfg: Settings,
    run_id: str,
    as_of: date,
    scores: pa.Table,
    eligible: int,
    previous: tuple[int, float | None] | None,
) -> None:
    """The scores gate: in range, one per eligible visitor, mean not far from the last scored day's (when the same
    model scored it)."""
    mean_before = previous[1] if previous else None
    con.register("scores_checked", scores.select(["visitor_id", "propensity", "decile"]))
    try:
        outcomes = run_suite(
            con,
            "visitor_scores",
            "scores_checked",
            {
                "eligible_visitors": eligible,
                "min_mean": mean_before / cfg.score_mean_ratio_limit if mean_before else 0.0,
                "max_mean": mean_before * cfg.score_mean_ratio_limit if mean_before else 1.0,
            },
        )
    finally:
        con.unregister("scores_checked")
    record(con, run_id, outcomes)
    raise_if_failed(outcomes, f"scores as of {as_of}")
