"""The simulated shop: deterministic, shaped like Retail Rocket, and honest about its hidden truth."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from models_py.data import events_file
from models_py.shop_calendar import DAY_MS
from models_py.world import shop_stats
from models_py.world import simulate as simulator
from models_py.world.oracle import first_purchase_probability, true_probabilities
from models_py.world.traffic import CALENDAR
from tests.conftest import SMALL_SCALE, SMALL_SEED


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.csv"))}


def test_same_seed_gives_identical_files_and_another_seed_does_not(small_world: Path, tmp_path: Path) -> None:
    simulator.simulate(tmp_path / "a", tmp_path / "ta", scale=SMALL_SCALE, seed=SMALL_SEED)
    simulator.simulate(tmp_path / "b", tmp_path / "tb", scale=SMALL_SCALE, seed=SMALL_SEED + 1)
    assert _digest(tmp_path / "a") == _digest(small_world / "landing")
    assert _digest(tmp_path / "b") != _digest(small_world / "landing")


def test_one_file_per_shop_day_in_the_real_schema(small_world: Path) -> None:
    days = sorted((small_world / "landing").glob("events_*.csv"))
    assert len(days) == 138
    assert days[0].name == "events_2015-05-03.csv" and days[-1].name == "events_2015-09-17.csv"
    total = 0
    for path in days:
        assert path.read_text().split("\n", 1)[0] == events_file.HEADER
        table = events_file.read_events(path)  # strict parse: schema, types, transactionid rule
        ts = table["timestamp"].to_numpy()
        day_start = CALENDAR.day_start_ms(date.fromisoformat(path.stem.removeprefix("events_")))
        assert ts.min() >= day_start and ts.max() < day_start + DAY_MS
        assert np.all(np.diff(ts) >= 0)
        total += table.num_rows
    assert (small_world / "landing" / "category_tree.csv").read_text().startswith("categoryid,parentid\n")
    assert (small_world / "landing" / "item_properties.csv").read_text().startswith("timestamp,itemid,property,value\n")
    assert total > 40_000


def test_shape_matches_the_real_shop_at_small_scale(small_world: Path) -> None:
    figures = {f.name: f for f in shop_stats.shape_figures(small_world / "landing", SMALL_SCALE)}
    outside = [f"{f.name}={f.value:.4g} ({f.tolerance})" for f in figures.values() if not f.ok]
    assert not outside, outside


def test_chunked_generation_streams_and_keeps_days_sorted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator, "CHUNK_VISITORS", 4_000)
    totals = simulator.simulate(tmp_path / "l", tmp_path / "t", scale=0.01, seed=3)
    assert totals["chunks"] == 4
    rows = 0
    for path in sorted((tmp_path / "l").glob("events_*.csv")):
        table = events_file.read_events(path)
        assert np.all(np.diff(table["timestamp"].to_numpy()) >= 0)
        rows += table.num_rows
    assert rows == totals["events"]
    assert len(list((tmp_path / "t").glob("visitors_*.parquet"))) == 4
    assert not list((tmp_path / "l").glob(".simulate-tmp*"))


@pytest.mark.parametrize(
    ("in_market", "kappa", "eps", "q", "mu"),
    [
        (False, 0.02, 1.0, 0.3, 0.001),
        (True, 0.02, 1.0, 0.3, 0.001),
        (True, 0.3, 0.5, 0.8, 0.05),
        (False, 0.0002, 0.7, 0.1, 0.01),
    ],
)
def test_closed_form_truth_matches_a_monte_carlo_of_the_chain(in_market, kappa, eps, q, mu) -> None:
    rng = np.random.default_rng(0)
    n, h = 200_000, 7.0
    t = np.zeros(n)
    state = np.full(n, in_market)
    death = rng.exponential(1 / mu, n)
    bought = np.zeros(n, bool)
    live = np.ones(n, bool)
    while live.any():
        rate = np.where(state, eps, kappa)
        t_next = t + rng.exponential(1 / rate)
        done = live & ((t_next > h) | (t_next > death))
        live &= ~done
        leaving = live & state
        bought |= leaving & (rng.random(n) < q)
        live &= ~bought
        state = np.where(live, ~state, state)
        t = t_next
    mc = bought.mean()
    exact = first_purchase_probability(np.array([in_market]), *(np.array([x]) for x in (kappa, eps, q, mu)), h)[0]
    assert abs(mc - exact) < 4 * np.sqrt(exact * (1 - exact) / n) + 1e-4


def test_true_probabilities_agree_with_realised_purchases(small_world: Path) -> None:
    con = shop_stats.load_events(small_world / "landing")
    expected = observed = 0.0
    for as_of in shop_stats.default_cutoffs():
        check = shop_stats.oracle_check(con, small_world / "truth", as_of)
        expected += check.mean_true_probability * check.visitors
        observed += check.buyers
    assert observed > 100
    assert abs(observed - expected) < 3.5 * np.sqrt(expected)


def test_oracle_table_has_one_row_per_visitor_seen_before_the_cutoff(small_world: Path) -> None:
    as_of = shop_stats.default_cutoffs()[-1]
    table = true_probabilities(small_world / "truth", as_of, 7)
    assert table.column_names == ["visitor_id", "as_of_date", "horizon_days", "true_probability"]
    con = shop_stats.load_events(small_world / "landing")
    vid, _ = shop_stats.realised_labels(con, as_of, 7)
    assert sorted(table["visitor_id"].to_pylist()) == sorted(vid.tolist())
    p = table["true_probability"].to_numpy()
    assert p.min() >= 0 and p.max() <= 1 and 0 < p.mean() < 0.01


def test_shop_parameters_change_by_name_and_a_wrong_name_is_refused() -> None:
    from models_py.errors import BadInputError
    from models_py.world.parameters import ShopParameters

    variant = ShopParameters().with_overrides(["arrival_taste_share=0.95", "days=30"])
    assert variant.arrival_taste_share == 0.95 and variant.days == 30 and variant.taste_share == 0.7
    for bad in ("arrival_taste=0.9", "days=thirty", "days"):
        with pytest.raises(BadInputError, match="--param"):
            ShopParameters().with_overrides([bad])


def test_an_order_system_export_of_the_same_shop_holds_its_transactions_only(small_world: Path, tmp_path: Path) -> None:
    """`simulate --events transaction`: the same shop, seen through an order system (every purchase, nothing else)."""
    simulator.simulate(tmp_path / "landing", tmp_path / "truth", scale=SMALL_SCALE, seed=SMALL_SEED,
                       event_types=("transaction",))  # fmt: skip
    for day in ("events_2015-06-01.csv", "events_2015-09-17.csv"):
        everything = events_file.read_events(small_world / "landing" / day)
        orders = events_file.read_events(tmp_path / "landing" / day)
        assert set(orders["event"].to_pylist()) <= {"transaction"}
        assert orders.equals(everything.filter(pc.equal(everything["event"], "transaction")))
    assert (tmp_path / "truth" / "visitors_00000.parquet").read_bytes() == (
        small_world / "truth" / "visitors_00000.parquet"
    ).read_bytes()
