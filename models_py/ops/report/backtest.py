"""Report sections from saved results: the out-of-time backtest and the ceiling of the simulated shop."""

from __future__ import annotations

from functools import partial

import numpy as np

from models_py.ops.report.page import Page, mean_sd, plt, table

COLORS = {
    "product": "#1b6ca8", "product_14_features": "#5fa8d3", "seed_v2": "#d1495b", "seed_v2_test_tuned": "#edae49",
    "seed_v1": "#8d6a9f", "bg_nbd": "#b5838d", "rfm_gbm": "#e07a5f",
    "recency": "#66a182", "cart_heuristic": "#2e4057", "oracle": "#999999",
}  # fmt: skip
BACKTEST_COLUMNS = (
    "roc_auc", "auc_to_oracle", "pr_auc", "log_loss", "brier", "ece", "threshold", "precision", "recall", "f1",
    "precision_at_1pct", "precision_at_10pct", "lift_top_decile",
)  # fmt: skip


def _draw_roc_pr(axes, _i: int, _width: float, model: str, c: dict) -> None:
    axes[0].plot(c["roc_fpr"], c["roc_tpr"], label=model, color=COLORS.get(model))
    axes[1].plot(c["pr_recall"], c["pr_precision"], label=model, color=COLORS.get(model))
    axes[0].plot([0, 1], [0, 1], ":", color="#bbbbbb")


def _draw_lift(axes, i: int, width: float, model: str, c: dict) -> None:
    axes[0].bar(np.arange(1, 11) + i * width - 0.4, c["decile_lift"], width, label=model, color=COLORS.get(model))
    axes[1].plot(100 * np.array(c["precision_at_share"]), c["precision_at_k"], label=model, color=COLORS.get(model))


# Two-panel charts of every model's curves on the latest test cut-off: file name, caption, drawing, the two axes.
PANEL_CHARTS = (
    ("roc_pr", "ROC and precision-recall curves on the test cut-off {when}", _draw_roc_pr,
     {"xlabel": "false positive rate", "ylabel": "true positive rate", "title": "ROC"},
     {"xlabel": "recall", "ylabel": "precision", "title": "Precision-recall", "yscale": "log"}),
    ("lift_precision_at_k", "Decile lift and precision at k on {when}", _draw_lift,
     {"xlabel": "decile (1 = highest scores)", "ylabel": "buy rate / overall rate", "title": "Lift by decile"},
     {"xscale": "log", "xlabel": "% of visitors targeted", "ylabel": "precision", "title": "Precision at k"}),
)  # fmt: skip


def _panel_charts(page: Page, curves: dict, when: str) -> list[str]:
    def chart(draw, left: dict, right: dict) -> plt.Figure:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for i, (model, c) in enumerate(curves.items()):
            if model != "seed_v2_test_tuned":  # same scores as seed_v2; only its threshold differs
                draw(axes, i, 0.8 / max(len(curves), 1), model, c)
        axes[0].set(**left)
        axes[1].set(**right)
        axes[0].legend(fontsize=8)
        return fig

    return [
        page.figure(name, caption.format(when=when), partial(chart, draw, left, right), inputs=curves)
        for name, caption, draw, left, right in PANEL_CHARTS
    ]


def _reliability(page: Page, curves: dict) -> str:
    return page.figure(
        "calibration",
        "Reliability (10 equal-count bins, log scales): on the diagonal a propensity means what it says. "
        "seed_v2 is left out: its scale_pos_weight scores sit near 0.99 for buyers at a 0.1% base rate "
        "(its ECE is in the table)",
        lambda: _draw_reliability(curves),
        inputs=curves,
    )


def _draw_reliability(curves: dict) -> plt.Figure:
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
    return fig


def _over_cutoffs(page: Page, models: dict) -> str:
    return page.figure(
        "metrics_over_cutoffs", "ROC AUC per test cut-off", lambda: _draw_over_cutoffs(models), inputs=models
    )


def _draw_over_cutoffs(models: dict) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, body in models.items():
        if name == "seed_v2_test_tuned":
            continue
        xs = np.array([r["as_of_date"] for r in body["per_cutoff"]], dtype="datetime64[D]")
        ax.plot(xs, [r["roc_auc"] for r in body["per_cutoff"]], "o-", label=name, color=COLORS.get(name), ms=3)
    ax.set_ylabel("ROC AUC")
    ax.legend(fontsize=8, ncol=3)
    fig.autofmt_xdate()
    return fig


def backtest_section(page: Page, summary: dict) -> None:
    models, curves = summary["models"], summary.get("curves")
    when = summary.get("curves_as_of_date")
    rows = [[name] + [mean_sd(body, c) for c in BACKTEST_COLUMNS] for name, body in models.items()]
    metrics_table = table(["model", *BACKTEST_COLUMNS], rows)
    explain = (
        f"<p>{len(summary['cutoffs'])} test cut-offs {summary['cutoffs'][0]}..{summary['cutoffs'][-1]}, "
        "mean &plusmn; sd. For each test cut-off every model was trained, stopped, calibrated and given its "
        "threshold with labels complete before that cut-off, except <b>seed_v2_test_tuned</b>: the seed's model "
        "with its threshold picked on the test labels, as the seed did. Its precision/recall/F1 next to "
        "<b>seed_v2</b>'s (threshold from validation) is what that leak was worth. seed_v2's log loss, Brier and ECE "
        "show that <code>scale_pos_weight</code> scores are not probabilities. <b>product_14_features</b> is the "
        "product's twin on the original API's 14 features, the model that answers <code>propensity predict</code> "
        "for a 14-feature payload. <b>bg_nbd</b> is the classic repeat-purchase model (BG/NBD), fitted on each "
        "test cut-off's own purchase histories; <b>rfm_gbm</b> a gradient-boosted model of purchase recency, "
        "frequency, items bought and tenure, trained like the product. The oracle is the simulator's true "
        "probability from each visitor's hidden state: no model can rank better on average.</p>"
    )
    if "shipped_from" in summary:
        explain = f"<p><b>Shipped result</b>: {summary['shipped_from']}; run <code>propensity backtest</code> " \
                  "for this warehouse's.</p>" + explain  # fmt: skip
    charts = [_over_cutoffs(page, models)]
    if curves:
        roc_pr, lift = _panel_charts(page, curves, when)
        charts = [roc_pr, _reliability(page, curves), lift, *charts]
    page.section("Out-of-time backtest", explain, metrics_table, *charts)


def ceiling_section(page: Page, result: dict) -> None:
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
    if "shipped_from" in result:
        explain = f"<p><b>Shipped result</b>: {result['shipped_from']}.</p>" + explain
    ceiling_table = table(["features", "ROC AUC", "/ oracle", "over the product"], rows)
    page.section("How much of the oracle's lead is knowable", explain, ceiling_table)
