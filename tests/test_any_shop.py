"""A shop that is not Retail Rocket: an order system's export (purchases only) over most of a year, scored with a
30-day horizon on monthly cut-offs, all by settings. The whole job runs on it, and the backtest measures the product
beside BG/NBD, the classic model for such a log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from models_py.config import folder_env
from models_py.world.parameters import ShopParameters
from models_py.world.simulate import simulate
from tests.helpers import cli

pytestmark = pytest.mark.slow

SETTINGS = {
    "PROPENSITY_HORIZON_DAYS": "30",
    "PROPENSITY_CUTOFF_STEP_DAYS": "30",
    "PROPENSITY_TRAINING_CUTOFFS": "3",
    "PROPENSITY_DEVELOPMENT_CUTOFFS": "2015-07-31",
    "PROPENSITY_DAY_VOLUME_MIN_RATIO": "0",  # a few dozen orders a day: a quiet day is not a broken export
}


@pytest.fixture(scope="module")
def order_shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("orders")
    simulate(root / "data" / "landing", root / "data" / "truth", scale=0.15, seed=11,
             params=ShopParameters(days=300), event_types=("transaction",))  # fmt: skip
    env = {**folder_env(root), **SETTINGS}
    night = cli("nightly", env=env)
    assert night.returncode == 0, night.stderr[-3000:]
    return env


def test_a_log_of_orders_alone_is_scored_on_monthly_cutoffs_with_a_30_day_horizon(order_shop) -> None:
    with duckdb.connect(order_shop["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        assert con.execute("select distinct event from raw.events").fetchall() == [("transaction",)]
        labelled = con.sql("select distinct as_of_date from marts.fct_visitor_labels order by 1").fetchall()
        cutoffs = [r[0] for r in labelled]
        assert {(b - a).days for a, b in zip(cutoffs, cutoffs[1:], strict=False)} == {30}
        assert con.execute("select distinct horizon_days from marts.fct_visitor_labels").fetchall() == [(30,)]
        as_of = con.execute("select max(as_of_date) from ml.run_log where status = 'succeeded'").fetchone()[0]
        customers = con.execute(
            "select count(*) from marts.fct_visitor_features where as_of_date = ?", [as_of]
        ).fetchone()
        version, features = con.execute(
            "select model_version, feature_list from ml.model_registry where status = 'champion'"
        ).fetchone()
    # The champion starts from BG/NBD: its probability is the model's last feature, its parameters stored.
    assert features.split(",")[-1] == "repeat_purchase_probability"
    meta = json.loads((Path(order_shop["PROPENSITY_MODELS_DIR"]) / version / "metadata.json").read_text())
    assert set(meta["extra"]["repeat_purchase"]) == {"r", "alpha", "a", "b", "horizon_days", "intercept", "slope"}
    assert meta["extra"]["repeat_purchase"]["horizon_days"] == 30
    with duckdb.connect(order_shop["PROPENSITY_SERVING"], read_only=True) as serving:
        scored = serving.execute("select count(*), min(as_of_date) from visitor_propensity_scores").fetchone()
    assert scored == (customers[0], as_of)  # every customer the log knows, tonight


def test_the_backtest_puts_bg_nbd_and_an_rfm_model_beside_the_product_on_monthly_cutoffs(order_shop) -> None:
    result = cli("backtest", "--json", "--last", "2", env=order_shop)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["horizon_days"] == 30 and len(summary["cutoffs"]) + len(summary["skipped_cutoffs"]) == 2
    for name in ("product", "bg_nbd", "rfm_gbm", "seed_v2", "oracle"):
        assert len(summary["models"][name]["per_cutoff"]) == len(summary["cutoffs"]) >= 1
    bg = summary["models"]["bg_nbd"]["mean"]
    # BG/NBD ranks repeat buyers with real skill on a log of orders (the oracle bounds it from above).
    assert 0.55 < bg["roc_auc"] < summary["models"]["oracle"]["mean"]["roc_auc"]


def test_a_backtest_straight_after_ingest_builds_what_it_needs(order_shop, tmp_path: Path) -> None:
    env = {**folder_env(tmp_path), **SETTINGS}
    shutil.copytree(Path(order_shop["PROPENSITY_DATA_DIR"]) / "landing", tmp_path / "data" / "landing")
    assert cli("ingest", env=env).returncode == 0
    result = cli("backtest", "--last", "1", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bg_nbd" in result.stdout and "product" in result.stdout
    with duckdb.connect(env["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        assert con.execute("select count(distinct run_id) from ml.backtest_metrics").fetchone()[0] == 1


def test_a_clickstreams_model_does_without_bg_nbd(pipeline) -> None:
    cfg, _ = pipeline
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        features = con.execute("select feature_list from ml.model_registry where status = 'champion'").fetchone()[0]
    assert "repeat_purchase_probability" not in features.split(",") and "num_views_7d" in features.split(",")


def test_a_full_payload_is_scored_by_the_order_logs_champion_as_the_night_scored_it(order_shop) -> None:
    """Every one of the champion's mart columns, nulls as JSON null (a log of orders has no views to rate): the
    champion answers, deriving BG/NBD's probability as the night did, with each customer's published score."""
    from models_py.modeling import repeat_purchase
    from models_py.modeling.predict import predict_payload
    from models_py.ops import registry

    model = registry.load_pointed_champion(Path(order_shop["PROPENSITY_MODELS_DIR"]))
    columns = repeat_purchase.mart_columns(model)
    with duckdb.connect(order_shop["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        rows = con.execute(
            f"""select h.propensity, {", ".join(f"f.{c}" for c in columns)}
                from ml.visitor_propensity_score_history h
                join marts.fct_visitor_features f using (visitor_id, as_of_date)
                where h.as_of_date = (select max(as_of_date) from ml.visitor_propensity_score_history)
                order by hash(h.visitor_id) limit 50"""
        ).fetchall()
    assert len(rows) == 50 and all(None in r for r in rows)
    for published, *values in rows:
        result, unknown = predict_payload(model, json.dumps({"features": dict(zip(columns, values, strict=True))}))
        assert result["features_used"] == f"all {len(model.features)}" and result["model"] == model.version
        assert not unknown and result["propensity_to_buy"] == pytest.approx(published, abs=1e-6)
