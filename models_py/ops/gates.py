"""Validation gates: Great Expectations suites from expectations/, run on pandas frames pulled out as Arrow.

A failing gate raises GateFailed, naming the expectation and a few offending values, before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa

from models_py.config import PROJECT_ROOT, Settings
from models_py.data.events_file import EARLIEST_MS
from models_py.errors import GateFailed, JobFailed
from models_py.shop_calendar import DAY_MS, ShopCalendar
from models_py.warehouse.connection import fetch_arrow

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"


@dataclass(frozen=True)
class Outcome:
    suite: str
    expectation: str
    kwargs: dict
    success: bool
    unexpected_count: int | None
    sample: list


def _load_suite(name: str, params: dict[str, float | int]) -> dict:
    text = (EXPECTATIONS_DIR / f"{name}.json").read_text()
    for key, value in params.items():
        text = text.replace(f'"${{{key}}}"', json.dumps(value))
    if "${" in text:
        raise JobFailed(f"suite {name}: a run-time parameter was not given ({text[text.index('${') :][:40]})")
    return json.loads(text)


def suite_columns(name: str) -> list[str]:
    """Columns a suite looks at, so callers pull only those out of the warehouse."""
    spec = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())
    cols: list[str] = []
    for e in spec["expectations"]:
        kw = e["kwargs"]
        for c in [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *kw.get("column_list", [])]:
            if c and c not in cols:
                cols.append(c)
    return cols


def run_suite(name: str, frame: pd.DataFrame, params: dict[str, float | int] | None = None) -> list[Outcome]:
    os.environ.setdefault("TQDM_DISABLE", "1")  # GE draws progress bars; the job has its own progress lines
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite

    spec = _load_suite(name, params or {})
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("tonight")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = ExpectationSuite(name=spec["name"], expectations=spec["expectations"])
    result = batch.validate(suite)
    out = []
    for r in result.results:
        details = r.result or {}
        sample = details.get("partial_unexpected_list") or (
            [details["observed_value"]] if "observed_value" in details else []
        )
        config = r.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
        out.append(Outcome(name, config.type, kwargs, bool(r.success), details.get("unexpected_count"), sample[:5]))
    return out


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


def incoming_events_frame(files: list[tuple[Path, pa.Table]], calendar: ShopCalendar) -> pd.DataFrame:
    """Tonight's parsed files as one frame, with the shop day each daily file may hold (whole range otherwise)."""
    far_future = int(time.time() * 1000) + 10 * 365 * DAY_MS
    parts = []
    for path, table in files:
        match = re.fullmatch(r"events_(\d{4}-\d{2}-\d{2})\.csv", path.name)
        start = calendar.day_start_ms(date.fromisoformat(match.group(1))) if match else EARLIEST_MS
        end = start + DAY_MS if match else far_future
        n = table.num_rows
        parts.append(
            table.append_column("file_day_start_ms", pa.array([start] * n, pa.int64()))
            .append_column("file_day_end_ms", pa.array([end] * n, pa.int64()))
            .append_column("file_name", pa.array([path.name] * n))
        )
    return pa.concat_tables(parts).to_pandas()


def check_landing_files(con, run_id: str, calendar: ShopCalendar, files: list[tuple[Path, pa.Table]]) -> None:
    """The raw-events gate on tonight's parsed files, before anything of them is loaded."""
    outcomes = run_suite("raw_events", incoming_events_frame(files, calendar), {"now_ms": int(time.time() * 1000)})
    record(con, run_id, outcomes)
    raise_if_failed(outcomes, "tonight's landing files")


def check_features(con, cfg: Settings, run_id: str, as_of: date, previous: tuple[int, float] | None) -> int:
    """The features gate; returns the number of eligible visitors (what the scores must cover)."""
    columns = ", ".join(suite_columns("visitor_features"))
    features = fetch_arrow(con, f"select {columns} from marts.fct_visitor_features where as_of_date = ?", [as_of])
    if previous:
        low, high = int(previous[0] * (1 - cfg.row_count_tolerance)), int(previous[0] * (1 + cfg.row_count_tolerance))
    else:
        low, high = 1, 10**12
    outcomes = run_suite("visitor_features", features.to_pandas(), {"min_rows": low, "max_rows": high})
    record(con, run_id, outcomes)
    raise_if_failed(outcomes, f"features as of {as_of}")
    return features.num_rows


def check_scores(
    con, cfg: Settings, run_id: str, as_of: date, scores: pa.Table, eligible: int, previous: tuple[int, float] | None
) -> None:
    """The scores gate: in range, one per eligible visitor, mean not far from the last scored day's."""
    mean_before = previous[1] if previous else None
    outcomes = run_suite(
        "visitor_scores",
        scores.select(["visitor_id", "propensity", "decile"]).to_pandas(),
        {
            "eligible_visitors": eligible,
            "min_mean": mean_before / cfg.score_mean_ratio_limit if mean_before else 0.0,
            "max_mean": mean_before * cfg.score_mean_ratio_limit if mean_before else 1.0,
        },
    )
    record(con, run_id, outcomes)
    raise_if_failed(outcomes, f"scores as of {as_of}")
