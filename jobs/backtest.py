"""`propensity backtest` and `propensity ceiling`: build every weekly cut-off the data allows, then evaluate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path

from models_py.config import Settings
from models_py.modeling import backtest
from models_py.ops import results, run_log
from models_py.shop_calendar import utc_now_naive
from models_py.warehouse import build_plan, dbt
from models_py.warehouse.connection import session
from models_py.world import ceiling, oracle


def build_spine(cfg: Settings, say: Callable[[str], None], chosen: list[date] | None = None) -> list[date]:
    with session(cfg) as con:
        spine, plan = build_plan.plan_backtest(con, cfg, chosen)
    say(f"backtest spine: {len(spine)} cut-offs {spine[0]}..{spine[-1]}; {build_plan.describe(plan)}")
    if plan:
        dbt.build(cfg, plan, say)
    return spine


def run_backtest(
    cfg: Settings, last: int | None, say: Callable[[str], None], chosen: list[date] | None = None
) -> tuple[dict, Path]:
    build_spine(cfg, say, chosen)
    run_id = run_log.new_run_id()
    truth = partial(oracle.truth_for, cfg.truth_dir, horizon_days=cfg.horizon_days)
    with session(cfg) as con:
        truth = truth if oracle.has_truth(cfg.truth_dir) else None
        summary = backtest.run(con, cfg, truth, last=last, progress=say, chosen=chosen)
        summary["run_id"] = run_id
        summary["measured_at"] = utc_now_naive().isoformat(timespec="seconds")
        backtest.store(con, run_id, summary)
    return summary, results.save(cfg.reports_dir, "backtests", run_id, summary)


def ceiling_date(con, cfg: Settings) -> date:
    """The latest testable development cut-off: an experiment that may steer design belongs there, not on a date the
    backtest tests on. Without one, the latest testable cut-off."""
    testable = backtest.testable_dates(con, cfg)
    if not testable:
        raise backtest.TrainingError("no cut-off has complete labels and labelled history before it")
    reserved = [d for d in testable if d in set(cfg.development_cutoffs)]
    return (reserved or [d for d in testable if cfg.on_spine(d)] or testable)[-1]


def run_ceiling(cfg: Settings, as_of: date | None, say: Callable[[str], None]) -> tuple[dict, Path]:
    with session(cfg, read_only=True) as con:
        day = as_of or ceiling_date(con, cfg)
        say(f"ceiling on {day}: the product's model, then again with each part of the hidden state added")
        result = ceiling.run(con, cfg, day, progress=say)
    return result, results.save(cfg.reports_dir, "ceilings", result["as_of_date"], result)
