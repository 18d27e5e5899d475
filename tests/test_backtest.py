"""The out-of-time backtest and the report, on the small world (the scale-1 numbers come from `propensity backtest`)."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from models_py.modeling import backtest
from models_py.warehouse.connection import connect, session
from models_py.world.oracle import truth_for


@pytest.fixture(scope="session")
def backtested(pipeline, small_world: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the pipeline's warehouse with the backtest spine built and two chosen cut-offs backtested: the
    latest testable spine date and one three days before it, off the spine (built for the occasion)."""
    from jobs.backtest import run_backtest
    from models_py.config import settings

    cfg, _ = pipeline
    root = tmp_path_factory.mktemp("backtest")
    shutil.copytree(small_world / "truth", root / "data" / "truth")
    shutil.copy(cfg.warehouse_path, root / "propensity.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROPENSITY_DATA_DIR", str(root / "data"))
        mp.setenv("PROPENSITY_WAREHOUSE", str(root / "propensity.duckdb"))
        mp.setenv("PROPENSITY_REPORTS_DIR", str(root / "reports"))
        bt_cfg = settings()
        with session(bt_cfg, read_only=True) as con:
            latest = backtest.testable_dates(con, bt_cfg)[-1]
        chosen = [latest - timedelta(days=3), latest]
        summary, path = run_backtest(bt_cfg, last=None, say=lambda _: None, chosen=chosen)
        assert summary["cutoffs"] == [d.isoformat() for d in chosen]
    # Outside the context: later tests must see the pipeline's environment again, not this copy's.
    yield bt_cfg, summary, path


def test_backtest_reports_every_model_per_cutoff_with_mean_and_sd(backtested) -> None:
    cfg, summary, path = backtested
    assert json.loads(path.read_text())["cutoffs"] == summary["cutoffs"]
    assert len(summary["cutoffs"]) == 2
    assert list(summary["models"]) == list(backtest.MODELS)
    for name, body in summary["models"].items():
        assert [r["as_of_date"] for r in body["per_cutoff"]] == summary["cutoffs"], name
        assert set(backtest.SUMMARY_METRICS) <= set(body["mean"]) and set(body["mean"]) == set(body["sd"])
        for r in body["per_cutoff"]:
            assert 0.0 <= r["roc_auc"] <= 1.0 and 0.0 <= r["ece"] <= 1.0
            assert r["auc_to_oracle"] == pytest.approx(r["roc_auc"] / r["oracle_roc_auc"])
    # The test-tuned seed's threshold was chosen for the best F1 on the test labels: on every cut-off its F1 is at
    # least the honest threshold's (a threshold chosen any other way could do worse).
    honest, tuned = summary["models"]["seed_v2"], summary["models"]["seed_v2_test_tuned"]
    for h, t in zip(honest["per_cutoff"], tuned["per_cutoff"], strict=True):
        assert t["f1"] >= h["f1"] - 1e-12, h["as_of_date"]
    # The warehouse keeps every number, queryable.
    with session(cfg, read_only=True) as con:
        stored = con.execute(
            "select count(distinct model), count(distinct as_of_date) from ml.backtest_metrics where run_id = ?",
            [summary["run_id"]],
        ).fetchone()
    assert stored == (len(backtest.MODELS), 2)


def test_the_backtest_never_tests_on_a_development_cutoff(backtested) -> None:
    """A development cut-off (design choices are tried there) is left out of the default test cut-offs and refused
    when chosen; a cut-off without labelled history is refused by name."""
    from dataclasses import replace

    from models_py.errors import BadInputError

    cfg, summary, _ = backtested
    with session(cfg, read_only=True) as con:
        testable = [d for d in backtest.testable_dates(con, cfg) if cfg.on_spine(d)]
        reserved = testable[-2]
        dev_cfg = replace(cfg, development_cutoffs=(reserved,))
        assert backtest.backtest_dates(con, dev_cfg) == [d for d in testable if d != reserved]
        assert backtest.backtest_dates(con, replace(cfg, development_cutoffs=())) == testable
        with pytest.raises(BadInputError, match=f"{reserved} is a development cut-off"):
            backtest.backtest_dates(con, dev_cfg, [reserved, testable[-1]])
        with pytest.raises(BadInputError, match=f"{testable[0] - timedelta(days=70)} has no complete labels"):
            backtest.backtest_dates(con, dev_cfg, [testable[0] - timedelta(days=70)])


def test_a_chosen_cutoff_off_the_spine_is_tested_but_never_trained_on(backtested) -> None:
    """The fixture's chosen date off the spine now has labels in the mart: a later backtest may test on it, but no
    model (nightly or backtest) trains or validates on it, so pointing a backtest at it changes no nightly model."""
    from models_py.modeling.dataset import labelled_dates

    cfg, summary, _ = backtested
    off_spine = backtest.date.fromisoformat(summary["cutoffs"][0])
    assert not cfg.on_spine(off_spine)
    with session(cfg, read_only=True) as con:
        assert off_spine in labelled_dates(con, backtest.date.max, cfg, spine_only=False)
        assert off_spine not in labelled_dates(con, backtest.date.max, cfg)
        assert off_spine in backtest.testable_dates(con, cfg)
        assert off_spine not in backtest.backtest_dates(con, cfg)  # the default tests the spine only


def test_the_14_feature_model_is_tested_out_of_time_beside_the_product(backtested) -> None:
    """The model that answers the original 14-feature payload has its own out-of-time row: it ranks better than
    chance and, holding a subset of the product's information, not better than the product."""
    _, summary, _ = backtested
    product, companion = summary["models"]["product"], summary["models"]["product_14_features"]
    assert 0.6 < companion["mean"]["roc_auc"] <= product["mean"]["roc_auc"] + 0.02
    assert 0.0 < companion["mean"]["threshold"] < 1.0


def test_every_choice_but_the_test_tuned_threshold_ignores_the_test_labels(backtested, tmp_path: Path) -> None:
    """Flip every label of the test cut-off: no model's scores or threshold may move, except the one tuned on them."""
    cfg, summary, _ = backtested
    test_date = backtest.date.fromisoformat(summary["cutoffs"][-1])
    copy = tmp_path / "w.duckdb"
    shutil.copy(cfg.warehouse_path, copy)

    oracle = partial(truth_for, cfg.truth_dir, horizon_days=cfg.horizon_days)

    def predictions():
        with connect(copy, cfg.duckdb_memory_limit) as con:
            _, out = backtest.predict_cutoff(con, test_date, cfg, oracle)
        return out

    before = predictions()
    with connect(copy, cfg.duckdb_memory_limit) as con:
        con.execute(
            "update marts.fct_visitor_labels set has_purchased = not has_purchased where as_of_date = ?", [test_date]
        )
    after = predictions()
    for name in backtest.MODELS:
        if name == "seed_v2_test_tuned":
            assert after[name].threshold != before[name].threshold
            continue
        np.testing.assert_array_equal(after[name].p, before[name].p, err_msg=name)
        assert after[name].threshold == before[name].threshold, name


def test_the_report_has_every_chart_and_the_backtest_table(backtested, pipeline) -> None:
    from models_py.ops.report import write_report

    cfg, summary, _ = backtested
    with session(cfg, read_only=True) as con:
        index = write_report(
            con, cfg.reports_dir / "r1", cfg.calendar, summary, "test report", history=cfg.score_history_dir
        )
    page = index.read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    expected = {"event_mix", "events_per_day", "visitor_activity", "feature_importance", "roc_pr", "calibration",
                "lift_precision_at_k", "metrics_over_cutoffs"}  # fmt: skip
    assert expected <= {Path(i).stem for i in images}
    for image in images:
        assert (index.parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in backtest.MODELS:
        assert f"<td>{name}</td>" in page


def test_the_reports_data_section_shows_its_last_weeks_in_the_shops_hours(tmp_path: Path) -> None:
    """The data section reads the last REPORT_WEEKS of the daily rollups, not the whole history (whose cost would
    grow every night), and names the shop's own day start."""
    import duckdb

    from models_py.ops.report.page import Page
    from models_py.ops.report.sections import REPORT_WEEKS, data_section
    from models_py.shop_calendar import ShopCalendar

    con = duckdb.connect()
    con.execute("create schema intermediate")
    con.execute(  # 200 shop days, the n-th with n events
        """create table intermediate.int_visitor_days_rolled_up as
           select d as shop_day, date '1970-01-01' + cast(d as integer) as shop_date, d % 7 as visitor_id,
                  d - 16000 as num_events, d - 16000 as num_views, 0 as num_addtocarts, 0 as num_purchased_items
           from range(16001, 16201) as t(d)"""
    )
    con.execute(
        """create table intermediate.int_visitor_totals_folded as
           select date '2015-10-30' as as_of_date, 1 + i % 3 as total_events_all from range(50) as t(i)"""
    )
    page = Page(tmp_path, cache=tmp_path / ".charts")
    data_section(page, con, ShopCalendar(day_start_hour_utc=5))
    html = "".join(page.sections)
    shown = sum(range(200 - 7 * REPORT_WEEKS + 1, 201))  # the last 91 days' events
    assert f"Event mix of the last {REPORT_WEEKS} weeks' {shown:,} events" in html
    assert "days start 05:00 UTC" in html


def test_a_chart_is_drawn_again_only_when_what_it_shows_changes(tmp_path: Path) -> None:
    """The report's chart cache: a chart with the same inputs is copied from the last report, one with new inputs is
    drawn, a nightly chart is always drawn, and the cache keeps only the last report's charts."""
    from models_py.ops.report.page import Page, plt

    drawn: list[str] = []

    def draw(label: str):
        drawn.append(label)
        fig, ax = plt.subplots()
        ax.plot([1, len(drawn)])
        return fig

    for folder, inputs in (("r1", [1, 2]), ("r2", [1, 2]), ("r3", [1, 3])):
        page = Page(tmp_path / folder, cache=tmp_path / ".charts")
        page.folder.mkdir()
        page.figure("kept", "a chart of saved results", partial(draw, f"kept {folder}"), inputs=inputs)
        page.figure("nightly", "a chart of tonight", partial(draw, f"nightly {folder}"))
        page.prune_cache()
        assert (page.folder / "kept.png").is_file() and (page.folder / "nightly.png").is_file()
    assert drawn == ["kept r1", "nightly r1", "nightly r2", "kept r3", "nightly r3"]
    assert (tmp_path / "r1" / "kept.png").read_bytes() == (tmp_path / "r2" / "kept.png").read_bytes()
    assert len(list((tmp_path / ".charts").glob("*.png"))) == 1


def test_the_ceiling_starts_from_the_product_model_and_measures_what_the_hidden_state_adds(
    backtested, tmp_path: Path
) -> None:
    from models_py.ops.report import write_report
    from models_py.world import ceiling

    cfg, summary, _ = backtested
    test_date = backtest.date.fromisoformat(summary["cutoffs"][-1])
    with session(cfg, read_only=True) as con:
        result = ceiling.run(con, cfg, test_date)
        page = write_report(con, tmp_path / "r", cfg.calendar, summary, "test report", ceiling=result).read_text()
    product = summary["models"]["product"]["per_cutoff"][-1]
    assert list(result["variants"]) == list(ceiling.variants())
    # Its baseline is the backtest's own product model on the same cut-off, not a lookalike.
    assert result["variants"]["product"]["roc_auc"] == pytest.approx(product["roc_auc"], abs=1e-9)
    assert result["oracle_roc_auc"] == pytest.approx(product["oracle_roc_auc"], abs=1e-9)
    # The hidden state is information: given all of it the same learner must come closer to the oracle.
    assert result["variants"]["+all_hidden"]["roc_auc"] > product["roc_auc"] + 0.01
    for name in ceiling.variants():
        assert f"<td>{name}</td>" in page


def test_the_ceiling_names_the_missing_truth_of_a_real_shop(backtested, tmp_path: Path) -> None:
    from models_py.errors import BadInputError
    from models_py.world import ceiling

    cfg, summary, _ = backtested
    test_date = backtest.date.fromisoformat(summary["cutoffs"][-1])
    with (
        session(cfg, read_only=True) as con,
        pytest.raises(BadInputError, match=f"no simulator truth in {tmp_path}"),
    ):
        ceiling.run(con, cfg, test_date, truth_dir=tmp_path)


def test_a_cutoff_too_young_to_train_is_skipped_and_named_and_the_others_kept(backtested, monkeypatch) -> None:
    """A young shop's first cut-offs cannot calibrate a model: the backtest names them and measures the rest (every
    model on the same dates); with none left it fails saying why."""
    cfg, summary, _ = backtested
    young, kept = summary["cutoffs"]
    scored = backtest.predict_cutoff

    def too_young_on_the_first(con, test_date, *args):
        if test_date.isoformat() == young:
            raise backtest.TrainingError("cannot calibrate on the validation cut-off: too young")
        return scored(con, test_date, *args)

    monkeypatch.setattr(backtest, "predict_cutoff", too_young_on_the_first)
    chosen = [backtest.date.fromisoformat(d) for d in summary["cutoffs"]]
    with session(cfg, read_only=True) as con:
        partial_summary = backtest.run(con, cfg, None, chosen=chosen)
        assert partial_summary["cutoffs"] == [kept]
        assert partial_summary["skipped_cutoffs"] == [
            {"as_of_date": young, "reason": "cannot calibrate on the validation cut-off: too young"}
        ]
        for name, body in partial_summary["models"].items():
            assert [r["as_of_date"] for r in body["per_cutoff"]] == [kept], name
        with pytest.raises(backtest.TrainingError, match="no test cut-off could be evaluated: .*too young"):
            backtest.run(con, cfg, None, chosen=chosen[:1])
