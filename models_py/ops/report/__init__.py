"""The HTML report: the data, the champion model, drift, and the out-of-time backtest, as PNG charts and tables."""

from __future__ import annotations

import html
import json
from pathlib import Path

import duckdb

from models_py.config import PROJECT_ROOT, Settings
from models_py.ops import results
from models_py.ops.report.backtest import backtest_section, ceiling_section
from models_py.ops.report.marketing import marketing_section
from models_py.ops.report.page import STYLE, Page
from models_py.ops.report.sections import data_section, drift_section, model_section
from models_py.shop_calendar import ShopCalendar


def write_report(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    calendar: ShopCalendar,
    backtest_summary: dict | None,
    title: str,
    ceiling: dict | None = None,
    history: Path | None = None,
) -> Path:
    """The report page; ``history`` is the score history's folder, for tonight's audiences."""
    folder.mkdir(parents=True, exist_ok=True)
    page = Page(folder, cache=folder.parent / ".charts")
    marketing_section(page, con, history)
    data_section(page, con, calendar)
    model_section(page, con)
    drift_section(page, con)
    if backtest_summary:
        backtest_section(page, backtest_summary)
    else:
        page.section("Out-of-time backtest", "<p>No backtest yet: run <code>propensity backtest</code>.</p>")
    if ceiling:
        ceiling_section(page, ceiling)
    page.prune_cache()
    index = folder / "index.html"
    index.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Numbers come from the warehouse this report was built from (the simulated shop unless you ingested "
        "real events).</p>" + "".join(page.sections) + "</body></html>\n"
    )
    return index


SHIPPED = PROJECT_ROOT / "reports"  # the scale-1 backtest and ceiling kept in git


def refresh(con: duckdb.DuckDBPyConnection, cfg: Settings, run_id: str, title: str) -> Path:
    """The report of a run, with the latest saved backtest and ceiling; without one run here, the ones measured on
    the simulated scale-1 shop and shipped with the project (said so on the page)."""
    backtest = results.latest(cfg.reports_dir, "backtests") or _shipped("backtest_scale1.json")
    ceiling = results.latest(cfg.reports_dir, "ceilings") or _shipped("ceiling_scale1.json")
    return write_report(con, cfg.reports_dir / run_id, cfg.calendar, backtest, title, ceiling, cfg.score_history_dir)


def _shipped(name: str) -> dict | None:
    path = SHIPPED / name
    if not path.is_file():
        return None
    found = json.loads(path.read_text())
    found["shipped_from"] = f"reports/{name}, measured on the simulated scale-1 shop (not this warehouse)"
    return found
