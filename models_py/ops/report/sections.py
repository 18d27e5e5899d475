"""Report sections from the warehouse: the data, the champion model, and drift."""

from __future__ import annotations

import json

import duckdb
import numpy as np

from models_py.ops import registry
from models_py.ops.report.page import Page, plt, table
from models_py.shop_calendar import ShopCalendar

REPORT_WEEKS = 13  # the data section's window: a quarter of whole weeks, enough to see the weekly cycle and a trend


def data_section(page: Page, con: duckdb.DuckDBPyConnection, calendar: ShopCalendar) -> None:
    # The last REPORT_WEEKS of the daily rollups (stored in day order, so the older days' row groups are skipped:
    # the nightly report's cost does not grow with the shop's history) and the latest lifetime totals.
    last_day = con.execute("select max(shop_day) from intermediate.int_visitor_days_rolled_up").fetchone()[0]
    daily = con.execute(
        """select shop_date, sum(num_events), sum(num_views), sum(num_addtocarts), sum(num_purchased_items)
           from intermediate.int_visitor_days_rolled_up where shop_day > ? group by 1 order by 1""",
        [None if last_day is None else last_day - 7 * REPORT_WEEKS],
    ).fetchall()
    views, carts, purchases = (sum(row[k] for row in daily) for k in (2, 3, 4))
    mix = sorted([("view", views), ("addtocart", carts), ("transaction", purchases)], key=lambda kv: -kv[1])
    daily = [(day, events) for day, events, *_ in daily]
    per_visitor = con.execute(
        """select total_events_all, count(*) from intermediate.int_visitor_totals_folded
           where as_of_date = (select max(as_of_date) from intermediate.int_visitor_totals_folded)
           group by 1 order by 1"""
    ).fetchall()
    total = sum(n for _, n in mix)

    def event_mix() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar([e for e, _ in mix], [100 * n / total for _, n in mix], color="#1b6ca8")
        ax.set_yscale("log")
        ax.set_ylabel("% of events (log scale)")
        for i, (_, n) in enumerate(mix):
            ax.annotate(f"{100 * n / total:.2f}%", (i, 100 * n / total), ha="center", va="bottom")
        return fig

    def events_per_day() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(8, 3))
        days = np.array([d for d, _ in daily], dtype="datetime64[D]")
        counts = np.array([n for _, n in daily])
        weekend = ((days.astype(np.int64) + 3) % 7) >= 5  # 1970-01-01 was a Thursday
        ax.plot(days, counts, color="#1b6ca8", lw=1)
        ax.scatter(days[weekend], counts[weekend], color="#d1495b", s=8, label="Saturday/Sunday", zorder=3)
        ax.set_ylabel("events per shop day")
        ax.legend()
        fig.autofmt_xdate()  # dates slanted, so the labels never overlap
        return fig

    def visitor_activity() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.loglog([n for n, _ in per_visitor], [c for _, c in per_visitor], ".", ms=3, color="#1b6ca8")
        ax.set_xlabel("events per visitor")
        ax.set_ylabel("visitors")
        return fig

    page.section(
        "The data",
        page.figure("event_mix", f"Event mix of the last {REPORT_WEEKS} weeks' {total:,} events", event_mix),
        page.figure(
            "events_per_day",
            f"Events per shop day over the last {REPORT_WEEKS} weeks (days start "
            f"{calendar.day_start_hour_utc:02d}:00 UTC): the weekly cycle",
            events_per_day,
        ),
        page.figure("visitor_activity", "Visitor activity: most visitors come once, a few thousands", visitor_activity),
    )


def model_section(page: Page, con: duckdb.DuckDBPyConnection) -> None:
    champion = registry.load_champion(con)
    if champion is None:
        page.section("The model", "<p>No champion model yet: the nightly job trains one.</p>")
        return
    meta = champion.meta
    gain = champion.booster.get_score(importance_type="gain")
    top = sorted(gain.items(), key=lambda kv: kv[1])[-20:]

    def importance() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(6, 5))
        ax.barh([k for k, _ in top], [v for _, v in top], color="#1b6ca8")
        ax.set_xscale("log")  # one dominant feature would flatten the other 19 on a linear axis
        ax.set_xlabel("mean gain per split (log scale)")
        return fig

    importance_fig = page.figure(
        "feature_importance", f"Feature importance of {meta.version} (top 20 by gain)", importance, inputs=top
    )
    m = meta.metrics
    card = table(
        ["champion", "trained at", "training cut-offs", "validation cut-off", "trees", "threshold"],
        [[meta.version, meta.trained_at, f"{meta.training_as_of_dates[0]}..{meta.training_as_of_dates[-1]}",
          meta.validation_as_of_date, meta.best_iteration, meta.threshold]],
    )  # fmt: skip
    validation = table(
        ["ROC AUC", "PR AUC", "log loss", "Brier", "ECE", "precision", "recall", "F1", "precision top 1%", "lift"],
        [[m.get("roc_auc"), m.get("pr_auc"), m.get("log_loss"), m.get("brier"), m.get("ece"), m.get("precision"),
          m.get("recall"), m.get("f1"), m.get("precision_at_1pct"), m.get("lift_top_decile")]],
    )  # fmt: skip
    runs = con.execute(
        """select model_version, trained_at, validation_as_of_date, status, metrics_json
           from ml.model_registry order by trained_at desc limit 20"""
    ).fetchall()
    history = table(
        ["model", "trained at", "validated on", "status", "ROC AUC", "PR AUC", "ECE"],
        [[v, t, d, s, json.loads(mj).get("roc_auc"), json.loads(mj).get("pr_auc"), json.loads(mj).get("ece")]
         for v, t, d, s, mj in runs],
    )  # fmt: skip
    page.section(
        "The model (refreshed by every nightly run)",
        card,
        "<p>On the calibration half of its validation cut-off (visitors early stopping never saw):</p>",
        validation,
        importance_fig,
        "<h3>Training runs (ml.model_registry, metrics also in ml.model_metrics)</h3>",
        history,
    )


def drift_section(page: Page, con: duckdb.DuckDBPyConnection) -> None:
    try:
        rows = con.execute(
            """select feature, psi, status from ml.feature_drift
               where run_id = (select run_id from ml.feature_drift order by measured_at desc limit 1)
               order by psi desc"""
        ).fetchall()
    except duckdb.CatalogException:
        return
    if not rows:
        return

    def drift() -> plt.Figure:
        fig, ax = plt.subplots(figsize=(6, 5))
        shown = rows[:20][::-1]
        colors = ["#66a182" if r[2] == "ok" else "#d1495b" for r in shown]
        ax.barh([r[0] for r in shown], [r[1] for r in shown], color=colors)
        ax.set_xlabel("PSI, training population vs tonight")
        return fig

    drift_fig = page.figure("feature_drift", "Feature drift of the latest run (red: above the warning level)", drift)
    page.section("Drift (ml.feature_drift, ml.score_drift)", drift_fig, table(["feature", "PSI", "status"], rows))
