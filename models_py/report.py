"""The HTML report: the data, the champion model, drift, and the out-of-time backtest, as PNG charts and tables."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")  # files only: the job runs headless under cron
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from models_py import registry  # noqa: E402

COLORS = {
    "product": "#1b6ca8", "seed_v2": "#d1495b", "seed_v2_test_tuned": "#edae49", "seed_v1": "#8d6a9f",
    "recency": "#66a182", "cart_heuristic": "#2e4057", "oracle": "#999999",
}  # fmt: skip
BACKTEST_COLUMNS = (
    "roc_auc", "auc_to_oracle", "pr_auc", "log_loss", "brier", "ece", "threshold", "precision", "recall", "f1",
    "precision_at_1pct", "precision_at_10pct", "lift_top_decile",
)  # fmt: skip


@dataclass
class Page:
    folder: Path
    sections: list[str] = field(default_factory=list)

    def figure(self, name: str, fig: plt.Figure, caption: str) -> str:
        fig.tight_layout()
        fig.savefig(self.folder / f"{name}.png", dpi=110)
        plt.close(fig)
        return f'<figure><img src="{name}.png" alt="{html.escape(caption)}"><figcaption>{caption}</figcaption></figure>'

    def section(self, title: str, *parts: str) -> None:
        self.sections.append(f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>")


def _table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.4f}" if abs(v) < 100 else f"{v:,.0f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _data_section(page: Page, con: duckdb.DuckDBPyConnection) -> None:
    mix = con.execute("select event, count(*) from raw.events group by 1 order by 2 desc").fetchall()
    daily = con.execute(
        """select cast(make_timestamp((timestamp - 10800000) * 1000) as date) as day, count(*)
           from raw.events group by 1 order by 1"""
    ).fetchall()
    per_visitor = con.execute(
        "select n, count(*) from (select count(*) as n from raw.events group by visitorid) group by 1 order by 1"
    ).fetchall()
    total = sum(n for _, n in mix)

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([e for e, _ in mix], [100 * n / total for _, n in mix], color="#1b6ca8")
    ax.set_yscale("log")
    ax.set_ylabel("% of events (log scale)")
    for i, (_, n) in enumerate(mix):
        ax.annotate(f"{100 * n / total:.2f}%", (i, 100 * n / total), ha="center", va="bottom")
    mix_fig = page.figure("event_mix", fig, f"Event mix of {total:,} events")

    fig, ax = plt.subplots(figsize=(8, 3))
    days = np.array([d for d, _ in daily], dtype="datetime64[D]")
    counts = np.array([n for _, n in daily])
    weekend = ((days.astype(np.int64) + 3) % 7) >= 5  # 1970-01-01 was a Thursday
    ax.plot(days, counts, color="#1b6ca8", lw=1)
    ax.scatter(days[weekend], counts[weekend], color="#d1495b", s=8, label="Saturday/Sunday", zorder=3)
    ax.set_ylabel("events per shop day")
    ax.legend()
    daily_fig = page.figure("events_per_day", fig, "Events per shop day (days start 03:00 UTC): the weekly cycle")

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.loglog([n for n, _ in per_visitor], [c for _, c in per_visitor], ".", ms=3, color="#1b6ca8")
    ax.set_xlabel("events per visitor")
    ax.set_ylabel("visitors")
    activity_fig = page.figure("visitor_activity", fig, "Visitor activity: most visitors come once, a few thousands")
    page.section("The data", mix_fig, daily_fig, activity_fig)


def _model_section(page: Page, con: duckdb.DuckDBPyConnection, models_dir: Path) -> None:
    champion = registry.load_champion(con)
    if champion is None:
        page.section("The model", "<p>No champion model yet: the nightly job trains one.</p>")
        return
    meta = champion.meta
    gain = champion.booster.get_score(importance_type="gain")
    top = sorted(gain.items(), key=lambda kv: kv[1])[-20:]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.barh([k for k, _ in top], [v for _, v in top], color="#1b6ca8")
    ax.set_xlabel("mean gain per split")
    importance_fig = page.figure("feature_importance", fig, f"Feature importance of {meta.version} (top 20 by gain)")
    m = meta.metrics
    card = _table(
        ["champion", "trained at", "training cut-offs", "validation cut-off", "trees", "threshold"],
        [[meta.version, meta.trained_at, f"{meta.training_as_of_dates[0]}..{meta.training_as_of_dates[-1]}",
          meta.validation_as_of_date, meta.best_iteration, meta.threshold]],
    )  # fmt: skip
    validation = _table(
        ["ROC AUC", "PR AUC", "log loss", "Brier", "ECE", "precision", "recall", "F1", "precision top 1%", "lift"],
        [[m.get("roc_auc"), m.get("pr_auc"), m.get("log_loss"), m.get("brier"), m.get("ece"), m.get("precision"),
          m.get("recall"), m.get("f1"), m.get("precision_at_1pct"), m.get("lift_top_decile")]],
    )  # fmt: skip
    runs = con.execute(
        """select model_version, trained_at, validation_as_of_date, status, metrics_json
           from ml.model_registry order by trained_at desc limit 20"""
    ).fetchall()
    history = _table(
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


def _drift_section(page: Page, con: duckdb.DuckDBPyConnection) -> None:
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
    fig, ax = plt.subplots(figsize=(6, 5))
    shown = rows[:20][::-1]
    colors = ["#66a182" if r[2] == "ok" else "#d1495b" for r in shown]
    ax.barh([r[0] for r in shown], [r[1] for r in shown], color=colors)
    ax.set_xlabel("population stability index, training population vs tonight")
    drift_fig = page.figure("feature_drift", fig, "Feature drift of the latest run (red: above the warning level)")
    page.section("Drift (ml.feature_drift, ml.score_drift)", drift_fig, _table(["feature", "PSI", "status"], rows))


def _backtest_section(page: Page, summary: dict) -> None:
    models, curves = summary["models"], summary["curves"]
    when = summary["curves_as_of_date"]

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, c in curves.items():
        if name == "seed_v2_test_tuned":
            continue  # same scores as seed_v2; only its threshold differs
        axes[0].plot(c["roc_fpr"], c["roc_tpr"], label=name, color=COLORS.get(name))
        axes[1].plot(c["pr_recall"], c["pr_precision"], label=name, color=COLORS.get(name))
    axes[0].plot([0, 1], [0, 1], ":", color="#bbbbbb")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    axes[1].set(xlabel="recall", ylabel="precision", title="Precision-recall", yscale="log")
    axes[0].legend(fontsize=8)
    curves_fig = page.figure("roc_pr", fig, f"ROC and precision-recall curves on the test cut-off {when}")

    fig, ax = plt.subplots(figsize=(5, 5))
    calibrated = [n for n in ("product", "recency", "oracle") if n in curves]
    values = [v for n in calibrated for v in curves[n]["reliability_predicted"] + curves[n]["reliability_observed"]]
    low, high = max(min(v for v in values if v > 0), 1e-6) / 2, max(values) * 2
    ax.plot([low, high], [low, high], ":", color="#bbbbbb")
    for name in calibrated:
        c = curves[name]
        ax.plot(c["reliability_predicted"], c["reliability_observed"], "o-", label=name, color=COLORS.get(name))
    ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high))
    ax.set(xlabel="mean predicted probability", ylabel="observed buy rate")
    ax.legend(fontsize=8)
    calibration_fig = page.figure(
        "calibration",
        fig,
        "Reliability (10 equal-count bins, log scales): on the diagonal a propensity means what it says. "
        "seed_v2 is left out: its scale_pos_weight scores sit near 0.99 for buyers at a 0.1% base rate "
        "(its ECE is in the table)",
    )

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / max(len(curves), 1)
    for i, (name, c) in enumerate(curves.items()):
        if name == "seed_v2_test_tuned":
            continue
        axes[0].bar(np.arange(1, 11) + i * width - 0.4, c["decile_lift"], width, label=name, color=COLORS.get(name))
        axes[1].plot(100 * np.array(c["precision_at_share"]), c["precision_at_k"], label=name, color=COLORS.get(name))
    axes[0].set(xlabel="decile (1 = highest scores)", ylabel="buy rate / overall rate", title="Lift by decile")
    axes[1].set(xscale="log", xlabel="% of visitors targeted", ylabel="precision", title="Precision at k")
    axes[0].legend(fontsize=8)
    lift_fig = page.figure("lift_precision_at_k", fig, f"Decile lift and precision at k on {when}")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, body in models.items():
        if name == "seed_v2_test_tuned":
            continue
        xs = np.array([r["as_of_date"] for r in body["per_cutoff"]], dtype="datetime64[D]")
        ax.plot(xs, [r["roc_auc"] for r in body["per_cutoff"]], "o-", label=name, color=COLORS.get(name), ms=3)
    ax.set_ylabel("ROC AUC")
    ax.legend(fontsize=8, ncol=3)
    over_time_fig = page.figure("metrics_over_cutoffs", fig, "ROC AUC per weekly test cut-off")

    rows = []
    for name, body in models.items():
        rows.append([name] + [_mean_sd(body, c) for c in BACKTEST_COLUMNS])
    table = _table(["model", *BACKTEST_COLUMNS], rows)
    explain = (
        f"<p>{len(summary['cutoffs'])} weekly test cut-offs {summary['cutoffs'][0]}..{summary['cutoffs'][-1]}, "
        "mean &plusmn; sd. For each test cut-off every model was trained, stopped, calibrated and given its "
        "threshold with labels complete before that cut-off, except <b>seed_v2_test_tuned</b>: the seed's model "
        "with its threshold picked on the test labels, as the seed did. Its precision/recall/F1 next to "
        "<b>seed_v2</b>'s (threshold from validation) is what that leak was worth. seed_v2's log loss, Brier and ECE "
        "show that <code>scale_pos_weight</code> scores are not probabilities. The oracle is the simulator's true "
        "probability from each visitor's hidden state: no model can rank better on average.</p>"
    )
    page.section("Out-of-time backtest", explain, table, curves_fig, calibration_fig, lift_fig, over_time_fig)


def _ceiling_section(page: Page, result: dict) -> None:
    base = result["variants"]["product"]["roc_auc"]
    rows = [
        [name, f"{r['roc_auc']:.4f}", f"{r['auc_to_oracle']:.3f}", f"{r['roc_auc'] - base:+.4f}"]
        for name, r in result["variants"].items()
    ]
    explain = (
        f"<p><code>propensity ceiling</code> on {result['as_of_date']} ({result['visitors']:,} visitors, "
        f"{result['buyers']:,} buyers, oracle ROC AUC {result['oracle_roc_auc']:.4f}): the product's model retrained "
        "by the same rules with parts of the simulator's hidden state added as features. What a variable adds is "
        "the part of the oracle's lead that the events do not reveal; what all of them leave is the learner's "
        "own shortfall.</p>"
    )
    table = _table(["features", "ROC AUC", "/ oracle", "over the product"], rows)
    page.section("How much of the oracle's lead is knowable", explain, table)


def _mean_sd(body: dict, key: str) -> str:
    mean, sd = body["mean"].get(key), body["sd"].get(key)
    if mean is None:
        return "-"
    return f"{mean:.4f} ± {sd:.4f}"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: 1em 0; }
td, th { border: 1px solid #ddd; padding: .3em .6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: .5em; } img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; }
"""


def write_report(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    models_dir: Path,
    backtest_summary: dict | None,
    title: str,
    ceiling: dict | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    page = Page(folder)
    _data_section(page, con)
    _model_section(page, con, models_dir)
    _drift_section(page, con)
    if backtest_summary:
        _backtest_section(page, backtest_summary)
    else:
        page.section("Out-of-time backtest", "<p>No backtest yet: run <code>propensity backtest</code>.</p>")
    if ceiling:
        _ceiling_section(page, ceiling)
    index = folder / "index.html"
    index.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Numbers come from the warehouse this report was built from (the simulated shop unless you ingested "
        "real events).</p>" + "".join(page.sections) + "</body></html>\n"
    )
    return index
