"""`propensity backtest`: build every weekly cut-off the data allows, then compare all models out of time."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from jobs.nightly import latest_as_of, new_run_id
from models_py import backtest, warehouse
from models_py.config import Settings
from models_py.dbt_runner import run_dbt
from models_py.shop_clock import shop_day

WARM_UP_DAYS = 30  # the longest feature window: earlier cut-offs would see truncated windows


def backtest_spine(first_day: date, as_of: date, step_days: int) -> list[date]:
    """Weekly cut-offs ending at ``as_of``, as far back as a full 30-day window allows."""
    dates, day = [], as_of
    while day >= first_day + timedelta(days=WARM_UP_DAYS):
        dates.append(day)
        day -= timedelta(days=step_days)
    return sorted(dates)


def build_spine(cfg: Settings, say: Callable[[str], None]) -> list[date]:
    with warehouse.session(cfg.warehouse_path) as con:
        as_of = latest_as_of(con)
        first_day = shop_day(con.execute("select min(timestamp) from raw.events").fetchone()[0])
        spine = backtest_spine(first_day, as_of, cfg.cutoff_step_days)
        try:
            have = {r[0] for r in con.execute("select distinct as_of_date from marts.fct_visitor_features").fetchall()}
        except Exception:  # noqa: BLE001 - no mart yet: build everything
            have = set()
    missing = [d for d in spine if d not in have]
    say(f"backtest spine: {len(spine)} weekly cut-offs {spine[0]}..{spine[-1]}; building features for {len(missing)}")
    run_dbt(
        cfg,
        ["build"],
        {
            "as_of_date": as_of.isoformat(),
            "feature_dates": [d.isoformat() for d in missing] or [as_of.isoformat()],
            "history_cutoffs": len(spine) - 1,
            "cutoff_step_days": cfg.cutoff_step_days,
            "label_horizon_days": cfg.horizon_days,
        },
        progress=say,
    )
    return spine


def run_backtest(cfg: Settings, last: int | None, say: Callable[[str], None]) -> tuple[dict, Path]:
    build_spine(cfg, say)
    run_id = new_run_id()
    with warehouse.session(cfg.warehouse_path) as con:
        summary = backtest.run(
            con,
            cfg.horizon_days,
            cfg.training_cutoffs,
            cfg.truth_dir,
            cfg.threads,
            cfg.max_training_negatives,
            last=last,
            progress=say,
        )
        summary["run_id"] = run_id
        summary["measured_at"] = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        backtest.store(con, run_id, summary)
    out = cfg.reports_dir / "backtests" / f"{run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    return summary, out


def latest_backtest(reports_dir: Path) -> dict | None:
    found = sorted((reports_dir / "backtests").glob("*.json"))
    return json.loads(found[-1].read_text()) if found else None


def save_ceiling(reports_dir: Path, result: dict) -> Path:
    out = reports_dir / "ceilings" / f"{result['as_of_date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return out


def latest_ceiling(reports_dir: Path) -> dict | None:
    found = sorted((reports_dir / "ceilings").glob("*.json"))
    return json.loads(found[-1].read_text()) if found else None
