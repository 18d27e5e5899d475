"""`make bench`: speed and memory of the job at scale 1, as ratios and seconds measured in one run.

Writes reports/bench.json so results can be compared across commits. BENCH_SCALE10=1 adds a scale-10 end-to-end
run (about 28M events; tens of minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from models_py.config import PROJECT_ROOT, folder_env
from models_py.shop_calendar import DAY_MS
from models_py.world.traffic import CALENDAR

SEED_WINDOWS = (1, 7, 30)


def _timed_cli(root: Path, *args: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one CLI call in its own process."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "jobs", *args],
        env={**os.environ, **folder_env(root)},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"propensity {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    return seconds, peak_mb


def _last_run(warehouse: Path) -> tuple[date, int, dict[str, float]]:
    """As-of date, visitors scored and stage seconds of the last successful nightly run in a warehouse."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        as_of, scored, stages = con.execute(
            "select as_of_date, visitors_scored, stage_seconds_json from ml.run_log "
            "where status = 'succeeded' order by finished_at desc limit 1"
        ).fetchone()
    return as_of, scored, json.loads(stages)


def pandas_seed_features(events: pd.DataFrame, cutoff_ms: int) -> pd.DataFrame:
    """The seed's 14 features the way a plain pandas script computes them (the reference to beat)."""
    past = events[events["timestamp"] < cutoff_ms].assign(
        is_view=lambda d: d["event"] == "view", is_cart=lambda d: d["event"] == "addtocart"
    )
    out = past.groupby("visitorid").agg(last=("timestamp", "max"))
    for n in SEED_WINDOWS:
        w = past[past["timestamp"] >= cutoff_ms - n * DAY_MS]
        g = w.groupby("visitorid").agg(
            total=("timestamp", "size"), views=("is_view", "sum"), carts=("is_cart", "sum"), items=("itemid", "nunique")
        )
        out[f"total_events_{n}d"] = g["total"]
        out[f"num_views_{n}d"] = g["views"]
        out[f"num_addtocart_{n}d"] = g["carts"]
        out[f"num_unique_items_{n}d"] = g["items"]
    out = out.fillna(0)
    out["days_since_last_event"] = (cutoff_ms - out.pop("last")) // DAY_MS
    out["add_to_cart_rate_7d"] = np.where(out["num_views_7d"] > 0, out["num_addtocart_7d"] / out["num_views_7d"], 0)
    return out


def duckdb_seed_features(con: duckdb.DuckDBPyConnection, cutoff_ms: int) -> None:
    """The same 14 features in DuckDB SQL over the same events."""
    windows = ",\n".join(
        f"""count(*) filter (where timestamp >= {cutoff_ms - n * DAY_MS}) as total_events_{n}d,
            count(*) filter (where timestamp >= {cutoff_ms - n * DAY_MS} and event = 'view') as num_views_{n}d,
            count(*) filter (where timestamp >= {cutoff_ms - n * DAY_MS} and event = 'addtocart') as num_addtocart_{n}d,
            count(distinct itemid) filter (where timestamp >= {cutoff_ms - n * DAY_MS}) as num_unique_items_{n}d"""
        for n in SEED_WINDOWS
    )
    con.execute(
        f"""create or replace temp table seed_features as
            select visitorid, {windows}, ({cutoff_ms} - max(timestamp)) // {DAY_MS} as days_since_last_event,
                   case when num_views_7d > 0 then num_addtocart_7d / num_views_7d else 0 end as add_to_cart_rate_7d
            from raw.events where timestamp < {cutoff_ms} group by 1"""
    )


def bench_features(warehouse: Path, as_of: date) -> dict[str, float]:
    cutoff = CALENDAR.day_start_ms(as_of)
    con = duckdb.connect(str(warehouse), read_only=True)
    events = con.execute("select timestamp, visitorid, event, itemid from raw.events").df()
    t = time.perf_counter()
    reference = pandas_seed_features(events, cutoff)
    pandas_s = time.perf_counter() - t
    t = time.perf_counter()
    duckdb_seed_features(con, cutoff)
    duckdb_s = time.perf_counter() - t
    got = con.execute("select * from seed_features order by visitorid").df().set_index("visitorid")
    con.close()
    reference = reference.sort_index()[got.columns]
    if not np.allclose(got.to_numpy(float), reference.to_numpy(float)):
        raise AssertionError("the DuckDB and pandas seed features disagree: the comparison would be meaningless")
    rows = len(got)
    return {"features_pandas_s": pandas_s, "features_duckdb_s": duckdb_s, "features_rows": rows}


def main() -> None:
    report: dict[str, float | int | str] = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "cores": os.cpu_count()}
    root = Path(tempfile.mkdtemp(prefix="propensity-bench-"))
    try:
        print(f"bench folder {root}", flush=True)
        report["simulate_scale1_s"], rss = _timed_cli(root, "simulate", "--scale", "1")
        report["nightly_first_run_scale1_s"], rss1 = _timed_cli(root, "nightly")
        report["nightly_scale1_s"], rss2 = _timed_cli(root, "nightly", "--force")
        wh = root / "warehouse" / "propensity.duckdb"
        as_of, scored, stage = _last_run(wh)
        report["nightly_stage_seconds"] = stage
        report["visitors_scored"] = scored
        report["score_visitors_per_s"] = scored / stage["score"]
        report.update(bench_features(wh, as_of))
        report["features_speedup_vs_pandas"] = report["features_pandas_s"] / report["features_duckdb_s"]
        report["peak_rss_mb"] = max(rss, rss1, rss2)
        if os.environ.get("BENCH_SCALE10") == "1":
            big = root / "scale10"
            report["simulate_scale10_s"], _ = _timed_cli(big, "simulate", "--scale", "10")
            report["nightly_first_run_scale10_s"], report["peak_rss_mb_scale10"] = _timed_cli(big, "nightly")
            report["nightly_first_run_scale10_stage_seconds"] = _last_run(big / "warehouse" / "propensity.duckdb")[2]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = PROJECT_ROOT / "reports" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(
        f"""
simulate scale 1          {report["simulate_scale1_s"]:.1f} s   (target < 30 s)
nightly, first run        {report["nightly_first_run_scale1_s"]:.1f} s   (backfills 9 weekly cut-offs and trains)
nightly, a regular night  {report["nightly_scale1_s"]:.1f} s   (target < 120 s; stages {stage})
seed features, 1 cut-off  DuckDB {report["features_duckdb_s"]:.2f} s vs pandas {report["features_pandas_s"]:.1f} s:
                          {report["features_speedup_vs_pandas"]:.0f}x faster (target >= 30x)
scoring                   {report["score_visitors_per_s"]:,.0f} visitors/s ({scored:,} visitors, target < 10 s)
peak RSS                  {report["peak_rss_mb"]:,} MB"""
    )
    if "nightly_first_run_scale10_s" in report:
        print(f"simulate scale 10         {report['simulate_scale10_s']:.1f} s   (target < 300 s)")
        print(
            f"nightly scale 10, first   {report['nightly_first_run_scale10_s']:.1f} s, "
            f"peak RSS {report['peak_rss_mb_scale10']:,} MB (target < 24 GB)\n"
            f"                          stages {report['nightly_first_run_scale10_stage_seconds']}"
        )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
