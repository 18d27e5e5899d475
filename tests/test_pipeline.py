"""The nightly job end to end on the small world: what marketing reads, reruns, readers, bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.nightly import run_nightly
from models_py.config import settings
from models_py.data import events_file, ingest
from models_py.data.events_file import HEADER
from models_py.modeling.calibration import LogOddsCalibration
from models_py.modeling.dataset import VISITOR_SALT, hash_unit
from models_py.ops import registry
from models_py.warehouse import build_plan, connection, dbt, schema, serving
from models_py.warehouse.connection import fetch_arrow, session
from tests.helpers import cli as _cli
from tests.helpers import served_sha

ROLLUPS = [
    f"intermediate.int_visitor_{kind}_rolled_up" for kind in ("days", "item_days", "category_days", "transactions")
]


def _serving(cfg) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(cfg.serving_path), read_only=True)


def test_serving_has_one_calibrated_row_per_eligible_visitor(pipeline) -> None:
    cfg, summary = pipeline
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        eligible = wh.execute(
            "select count(distinct visitorid) from raw.events where timestamp < ?",
            [cfg.calendar.day_start_ms(summary.as_of)],
        ).fetchone()[0]
        champion = wh.execute("select model_version from ml.model_registry where status = 'champion'").fetchone()[0]
    with _serving(cfg) as con:
        n, distinct, lo, hi, dates, versions, deciles = con.execute(
            """select count(*), count(distinct visitor_id), min(propensity), max(propensity),
                      count(distinct as_of_date), list(distinct model_version), count(distinct decile)
               from visitor_propensity_scores"""
        ).fetchone()
        cols = [r[0] for r in con.execute("describe visitor_propensity_scores").fetchall()]
    assert n == distinct == eligible == summary.visitors_scored
    assert 0.0 <= lo <= hi <= 1.0
    assert dates == 1 and versions == [champion] and deciles == 10
    for col in ("visitor_id", "as_of_date", "propensity", "decile", "segment", "model_version", "run_id", "scored_at"):
        assert col in cols
    # In visitor id order, so that a lookup by visitor reads one row group (the scoring sorts; nothing re-sorts).
    served_ids = pq.read_table(serving.ServingFiles(cfg.serving_path).current, columns=["visitor_id"])
    assert np.all(np.diff(served_ids["visitor_id"].to_numpy()) > 0)


def test_rerun_of_the_same_day_changes_nothing_and_forced_rerun_replaces(pipeline, own_world) -> None:
    _, summary = pipeline
    cfg = own_world.cfg
    before = served_sha(cfg)
    again = run_nightly(cfg, say=lambda _: None)
    assert again.run_id == summary.run_id and served_sha(cfg) == before
    query = "select visitor_id, propensity, decile, segment, model_version from visitor_propensity_scores order by 1"
    with _serving(cfg) as con:
        scores_before = con.execute(query).fetchall()
    forced = run_nightly(cfg, say=lambda _: None, force=True)
    with _serving(cfg) as con:
        assert con.execute(query).fetchall() == scores_before  # same model, same rows
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        rows, runs, diff = wh.execute(
            """select count(*), count(distinct run_id),
                      count(*) filter (where propensity < 0 or propensity > 1)
               from ml.visitor_propensity_score_history h where as_of_date = ?""",
            [summary.as_of],
        ).fetchone()
    assert rows == summary.visitors_scored and runs == 1 and diff == 0 and forced.run_id != summary.run_id
    with _serving(cfg) as con:
        assert con.execute("select any_value(run_id) from visitor_propensity_scores").fetchone()[0] == forced.run_id


def test_a_reader_that_keeps_its_connection_sees_the_next_night_whole(own_world) -> None:
    """A BI tool or a pool holds the serving file open across a publish: its next query, and a new connection in the
    same process (where DuckDB reuses the open database), read the new run's scores, never a mix."""
    cfg = own_world.cfg
    query = "select count(*), count(distinct run_id), any_value(run_id), sum(propensity) from visitor_propensity_scores"
    reader = _serving(cfg)
    before = reader.execute(query).fetchone()
    forced = run_nightly(cfg, say=lambda _: None, force=True)  # publishes while the reader holds the file
    after = reader.execute(query).fetchone()
    assert after[:2] == (before[0], 1) and after[2] == forced.run_id != before[2]
    assert after[3] == pytest.approx(before[3])  # same model, same features: the same scores
    with _serving(cfg) as second:  # same process, same path: DuckDB hands back the cached database
        assert second.execute(query).fetchone()[2] == forced.run_id
    reader.close()


GOOD_ROW = "1442548800000,1,view,2,"
CORRUPTED = {
    "truncated": HEADER + f"\n{GOOD_ROW}\n1442548800001,1,vi",
    "wrong-column-count": HEADER + f"\n{GOOD_ROW}\n1442548800001,1,view,2,,9",
    "non-numeric-id": HEADER + f"\n{GOOD_ROW}\n1442548800001,abc,view,2,",
    "unknown-event": HEADER + "\n1442548800000,1,click,2,\n",
    "seconds": HEADER + "\n1442548800,1,view,2,\n",
    "far-future": HEADER + "\n4102444800000,1,view,2,\n",
    "empty": "",
    "bom": "\ufeff" + HEADER + f"\n{GOOD_ROW}\n",
    "crlf": HEADER + f"\r\n{GOOD_ROW}\r\n",
}


@pytest.mark.parametrize("body", CORRUPTED.values(), ids=CORRUPTED.keys())
def test_a_corrupted_landing_file_fails_the_run_and_changes_nothing(own_world, body: str, tmp_path: Path) -> None:
    cfg = own_world.cfg
    bad = cfg.landing_dir / "events_2015-09-18.csv"
    bad.write_bytes(body.encode())
    served = served_sha(cfg)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        rows = wh.execute("select count(*) from raw.events").fetchone()[0]
    try:
        alert = tmp_path / "alert.txt"
        result = _cli(
            "nightly", env={"PROPENSITY_ON_FAILURE": f'echo "$PROPENSITY_EXIT_CODE $PROPENSITY_ERROR" > {alert}'}
        )
    finally:
        bad.unlink()
    assert result.returncode == 2, result.stderr
    assert alert.read_text().startswith("2 ") and "events_2015-09-18.csv" in alert.read_text()
    assert "events_2015-09-18.csv" in result.stderr and ("line" in result.stderr or "empty" in result.stderr)
    assert "Traceback" not in result.stderr
    assert served_sha(cfg) == served
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        assert wh.execute("select count(*) from raw.events").fetchone()[0] == rows


def test_predict_takes_the_seed_payload_and_names_bad_fields(pipeline) -> None:
    payload = {
        "features": {
            "total_events_30d": 50, "num_views_30d": 40, "num_addtocart_30d": 10, "num_unique_items_30d": 20,
            "total_events_7d": 25, "num_views_7d": 20, "num_addtocart_7d": 5, "num_unique_items_7d": 10,
            "total_events_1d": 8, "num_views_1d": 7, "num_addtocart_1d": 1, "num_unique_items_1d": 4,
            "days_since_last_event": 0, "add_to_cart_rate_7d": 0.25,
        },
        "visitorid": 123,
    }  # fmt: skip
    ok = _cli("predict", stdin=json.dumps(payload))
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["visitorid"] == 123 and 0.0 <= out["propensity_to_buy"] <= 1.0
    del payload["features"]["num_views_7d"]
    missing = _cli("predict", stdin=json.dumps(payload))
    assert missing.returncode == 2 and "num_views_7d" in missing.stderr
    payload["features"]["num_views_7d"] = "twenty"
    wrong = _cli("predict", stdin=json.dumps(payload))
    assert wrong.returncode == 2 and "num_views_7d" in wrong.stderr and "number" in wrong.stderr


def test_a_tampered_model_artifact_is_refused(pipeline, tmp_path: Path) -> None:
    cfg, _ = pipeline
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        version, folder, sha = wh.execute(
            "select model_version, artifact_path, artifact_sha256 from ml.model_registry where status = 'champion'"
        ).fetchone()
    copy = tmp_path / version
    shutil.copytree(folder, copy)
    (copy / "model.json").write_text((copy / "model.json").read_text().replace('"base_score"', '"base_score" '))
    with pytest.raises(registry.ArtifactError, match="refusing model"):
        registry.load(copy, sha)
    assert registry.load(Path(folder), sha).meta.version == version


def test_calibration_keeps_the_models_ranking_and_recovers_the_true_probabilities() -> None:
    rng = np.random.default_rng(7)
    log_odds = rng.normal(-6.0, 1.5, 400_000)
    labels = (rng.random(log_odds.size) < 1 / (1 + np.exp(-log_odds))).astype(np.int8)
    raw = (1 / (1 + np.exp(-(log_odds + 0.5) / 0.8))).astype(np.float32)  # too high and too spread out
    calibration = LogOddsCalibration.fit(raw, labels)
    assert calibration.slope == pytest.approx(0.8, abs=0.05) and calibration.intercept == pytest.approx(-0.5, abs=0.1)
    p = calibration.apply(raw)
    order = np.argsort(raw, kind="stable")
    assert np.unique(p).size == np.unique(raw).size and np.all(np.diff(p[order]) >= 0)
    assert p.mean() == pytest.approx(labels.mean(), rel=0.05)
    with pytest.raises(ValueError, match="both buyers and non-buyers"):
        LogOddsCalibration.fit(raw, np.zeros_like(labels))
    with pytest.raises(ValueError, match="do not rank buyers above"):
        LogOddsCalibration.fit(1 - raw, labels)


def test_a_model_stored_before_log_odds_calibration_still_loads(pipeline, tmp_path: Path) -> None:
    cfg, _ = pipeline
    champion = registry.load_pointed_champion(cfg.models_dir)
    copy = tmp_path / champion.meta.version
    shutil.copytree(cfg.models_dir / champion.meta.version, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**meta, "calibration": {"x": [0.0, 1.0], "y": [0.0, 0.5]}}))
    assert registry.load(copy).calibration.apply(np.array([0.5])).tolist() == [0.25]
    (copy / "metadata.json").write_text(json.dumps({**meta, "calibration": {"bins": [0.1]}}))
    with pytest.raises(registry.ArtifactError, match="metadata.json: unknown calibration"):
        registry.load(copy)


def test_reason_codes_are_the_largest_contributions_in_order() -> None:
    from models_py.modeling.score import _top_reasons

    contrib = np.array([[0.1, 3.0, -1.0, 2.0, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0], [-1.0, -2.0, -0.5, -3.0, 0.0]])
    assert _top_reasons(contrib).tolist() == [[1, 3, 4], [0, 1, 2], [4, 2, 0]]


def test_column_major_batches_predict_what_row_major_ones_do_to_the_bit() -> None:
    """Scoring hands XGBoost column-major batches to skip a transposing copy; an XGBoost that read them otherwise
    (or a layout that lost a value on the way) would change every published score."""
    import xgboost as xgb

    from models_py.modeling.dataset import column_major, row_major

    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    y = (np.nan_to_num(x[:, 0]) + rng.normal(size=3000) > 1).astype(np.int8)
    booster = xgb.train({"max_depth": 4, "nthread": 2}, xgb.DMatrix(x, label=y), num_boost_round=20)
    columns = [pa.array(x[:, j], mask=np.isnan(x[:, j])) for j in range(x.shape[1])]  # nulls, as DuckDB hands them
    by_column, by_row = column_major(columns), row_major(columns)
    assert by_column.flags.f_contiguous and by_row.flags.c_contiguous
    assert np.array_equal(by_column, x, equal_nan=True) and np.array_equal(by_row, x, equal_nan=True)
    assert np.array_equal(booster.inplace_predict(by_column), booster.inplace_predict(by_row))


def test_the_drift_sample_is_a_fifth_of_the_visitors_thinned_to_a_million_in_a_larger_shop() -> None:
    """Scale 1 keeps visitor_id % 5 == 0; a larger shop a multiple of 5, no sparser than the cap needs (scale 100's
    fifth was 28M rows x 49 features)."""
    from models_py.modeling.score import DRIFT_SAMPLE_ROWS, sample_modulus

    assert sample_modulus(1_407_580) == 5
    for visitors in (5_000_000, 5_000_001, 14_075_800, 140_758_000):
        modulus = sample_modulus(visitors)
        assert modulus % 5 == 0 and DRIFT_SAMPLE_ROWS / 2 < visitors / modulus <= DRIFT_SAMPLE_ROWS


def test_deciles_are_the_ranks_by_probability_then_visitor_id_ties_at_the_edges_included() -> None:
    """deciles() selects the nine edges instead of sorting every visitor; it must give what the full sort gives,
    rank r (by probability desc, then visitor id) in decile r * 10 // n + 1, however ties fall across the edges."""
    from models_py.modeling.ranking import deciles

    rng = np.random.default_rng(11)
    for trial in range(600):
        n = int(rng.integers(1, 40)) if trial % 3 else int(rng.integers(40, 3000))
        distinct = int(rng.integers(1, 12)) if trial % 2 else 10**9  # few values: ties straddle several edges
        p = rng.integers(0, distinct, n) / distinct
        visitor_id = rng.permutation(3 * n)[:n].astype(np.int64)
        rank = np.empty(n, np.int64)
        rank[np.lexsort((visitor_id, -p))] = np.arange(n)
        assert deciles(visitor_id, p).tolist() == (rank * 10 // n + 1).tolist(), (n, distinct)


def test_scores_are_put_in_visitor_order_whether_ids_are_dense_sparse_or_repeated() -> None:
    """by_visitor() places dense ids at their slots instead of sorting; it must give what a sort gives, and keep
    repeated ids (the scores gate names them) and any id range."""
    from models_py.modeling.ranking import by_visitor

    rng = np.random.default_rng(5)
    cases = {
        "dense": rng.permutation(5000),
        "dense from a negative id": rng.permutation(5000) - 2500,
        "gaps within the span": rng.permutation(8_000)[:5000],
        "sparse": rng.choice(10**12, 5000, replace=False),
        "repeated": np.concatenate([rng.permutation(5000), [17, 17, 4999]]),
        "one": np.array([42]),
        "none": np.array([], np.int64),
    }
    for name, ids in cases.items():
        ids = ids.astype(np.int64)
        p = rng.permutation(ids.size) / max(ids.size, 1)  # distinct: each probability says whose it is
        got_id, got_p = by_visitor(ids, p)
        assert got_id.dtype == np.int64 and np.array_equal(got_id, np.sort(ids)), name
        assert np.array_equal(np.sort(got_p), np.sort(p)), name  # every probability once
        owner = dict(zip(p.tolist(), ids.tolist(), strict=True))
        assert [owner[v] for v in got_p.tolist()] == got_id.tolist(), name  # each beside its own visitor


@pytest.mark.parametrize(("distinct_probabilities", "layout"), [(200, "C"), (1_000_000, "C"), (200, "F")])
def test_the_kept_rows_hold_the_whole_top_decile_with_its_ties_and_are_cut_a_few_times(
    distinct_probabilities: int, layout: str, monkeypatch
) -> None:
    """Scoring keeps the top decile's features while it streams the batches: every row at or above the final
    edge must be kept with its own features, and the kept rows are cut a few times, not on every batch (that
    copied every kept row again per batch, quadratic in the shop's size)."""
    from models_py.modeling import score

    rng = np.random.default_rng(7)
    n, batch, keep = 200_000, 2_000, 20_000
    ids = rng.permutation(n).astype(np.int64)
    p = rng.integers(0, distinct_probabilities, n) / distinct_probabilities  # 200 values: heavy ties at the edge
    cuts = []
    cut = score._TopRows._cut
    monkeypatch.setattr(score._TopRows, "_cut", lambda self: (cuts.append(self.rows), cut(self))[1])
    top = score._TopRows(keep=keep)
    for start in range(0, n, batch):
        part = slice(start, start + batch)
        # Batches come row-major from the mart (dataset.row_major); either layout must keep the same rows.
        x = np.asarray(np.column_stack([ids[part], p[part]]), np.float64, order=layout)
        top.add(ids[part], p[part], x)
        assert top.rows <= max(top.cut_at, keep + keep // 4 + 1) + batch
    kept_id, kept_x = top.take_rows()
    edge = np.sort(p)[-keep]
    assert sorted(kept_id.tolist()) == sorted(ids[p >= edge].tolist())
    own_p = p[np.argsort(ids)][kept_id].astype(np.float32)  # each kept row has its own features
    assert np.array_equal(kept_x[:, 0], kept_id) and np.array_equal(kept_x[:, 1], own_p)
    assert len(cuts) <= 12 < n // batch


def test_scores_from_contributions_equal_the_models_predictions(pipeline) -> None:
    """score() derives probabilities from the contributions' sum; it must be the model's own prediction."""
    import xgboost as xgb

    from models_py.modeling import score as score_mod
    from models_py.modeling.dataset import to_matrix

    cfg, summary = pipeline
    model = registry.load_pointed_champion(cfg.models_dir)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        scores = score_mod.score(con, model, summary.as_of, "check", 997, 2).scores.sort_by("visitor_id")
        cols = ", ".join(model.meta.features)
        query = f"select {cols} from marts.fct_visitor_features where as_of_date = ? order by visitor_id"
        table = fetch_arrow(con, query, [summary.as_of])
    x = to_matrix(table, model.meta.features)
    raw = model.booster.predict(xgb.DMatrix(x, feature_names=model.meta.features))
    p = scores["propensity"].to_numpy()
    np.testing.assert_allclose(p, model.calibration.apply(raw), atol=1e-5)
    # Deciles as a full sort by (probability desc, visitor id) gives them; reasons for exactly the top decile, the
    # same as contributions computed from a fresh read (the top rows were kept across the 997-row batches, and their
    # reasons computed in batches of as many).
    visitor_id, n = scores["visitor_id"].to_numpy(), p.size
    rank = np.empty(n, np.int64)
    rank[np.lexsort((visitor_id, -p))] = np.arange(n)
    assert scores["decile"].to_numpy().tolist() == (rank * 10 // n + 1).tolist()
    top = rank * 10 < n
    shown = np.array([scores[f"reason_{k}"].to_pylist() for k in (1, 2, 3)], dtype=object).T
    assert top.sum() > 2 * 997 and (shown[:, 0] != None).tolist() == top.tolist()  # noqa: E711 - elementwise
    expected = np.array(model.meta.features)[score_mod.reasons_for(model, x[top], 2)]
    assert shown[top].tolist() == expected.tolist()


def test_the_same_file_landed_twice_loads_nothing_twice(own_world) -> None:
    """Same name: skipped by the load log. Same rows under another name: every row is a duplicate and is dropped."""
    cfg = own_world.cfg
    first = sorted(cfg.landing_dir.glob("events_*.csv"))[-1]
    again = cfg.landing_dir / "events_copy.csv"
    shutil.copy(first, again)
    served = served_sha(cfg)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        rows = wh.execute("select count(*) from raw.events").fetchone()[0]
    try:
        result = _cli("ingest")
    finally:
        again.unlink()
    assert result.returncode == 0, result.stderr
    assert "0 rows" in result.stdout and "already loaded" in result.stdout
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        assert wh.execute("select count(*) from raw.events").fetchone()[0] == rows
    assert served_sha(cfg) == served


def test_a_loaded_file_is_read_again_only_when_its_size_or_time_moved(
    small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A night hashes the files it has not loaded and those whose size or modification time changed since their
    load, not every landed file (that read the whole history every night). A touched file with the loaded bytes is
    hashed once and its stat recorded, as is one loaded before stats were kept; one changed in place is refused (an
    events file) or replaces the old copy (the catalogue)."""
    days = sorted((small_world / "landing").glob("events_*.csv"))
    catalogue = ["category_tree.csv", "item_properties.csv"]
    landing = tmp_path / "landing"
    landing.mkdir()
    for path in [*days[:-1], *(small_world / "landing" / name for name in catalogue)]:
        shutil.copy2(path, landing / path.name)
    con = duckdb.connect()
    schema.ensure(con, tmp_path / "score_history")
    hashed: list[str] = []
    sha256_of = events_file.sha256_of
    monkeypatch.setattr(events_file, "sha256_of", lambda path: (hashed.append(path.name), sha256_of(path))[1])

    def night(run: str) -> list[str]:
        """The files loaded; ``hashed`` holds those read."""
        hashed.clear()
        return ingest.ingest(con, sorted(landing.glob("events_*.csv")), run, settings().calendar, landing).files_loaded

    assert sorted(night("r1")) == sorted(hashed) == sorted([d.name for d in days[:-1]] + catalogue)
    shutil.copy2(days[-1], landing / days[-1].name)
    assert night("r2") == hashed == [days[-1].name]
    assert night("r3") == hashed == []

    touched = [landing / days[0].name, landing / "item_properties.csv"]
    for path in touched:
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # the same bytes
    assert night("r4") == [] and sorted(hashed) == sorted(p.name for p in touched)
    assert night("r5") == hashed == []
    con.execute("update raw.load_log set file_bytes = null, file_modified_ns = null")  # loaded before stats
    assert night("r6") == [] and len(hashed) == len(days) + len(catalogue)
    assert night("r7") == hashed == []

    tree = landing / "category_tree.csv"
    tree.write_text(tree.read_text() + "999999,\n")
    assert night("r8") == hashed == ["category_tree.csv"]
    with touched[0].open("a") as fh:
        fh.write(touched[0].read_text().splitlines()[-1] + "\n")
    with pytest.raises(ingest.IngestError, match=f"{touched[0].name}: a file of this name was already loaded with"):
        night("r9")


def test_a_first_night_parses_one_file_at_a_time_and_loads_a_row_repeated_across_files_once(
    small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tonight's files are staged into DuckDB one by one: the Arrow memory held when a file is parsed does not grow
    with the files parsed before it (a large shop's history held at once did not fit in memory). A row in two of
    tonight's files loads once and counts for the first."""
    days = sorted((small_world / "landing").glob("events_*.csv"))
    twin = tmp_path / "events_twin.csv"  # not named after a day, so it may hold any day's rows
    twin.write_text("\n".join(days[-1].read_text().splitlines()[:11]) + "\n")  # the last day's first 10 rows
    held, sizes = [], []
    read = events_file.read_events

    def tracked(path: Path, **kwargs) -> pa.Table:
        held.append(pa.total_allocated_bytes())
        table = read(path, **kwargs)
        sizes.append(table.nbytes)
        return table

    monkeypatch.setattr(events_file, "read_events", tracked)
    con = duckdb.connect()
    schema.ensure(con, tmp_path / "score_history")
    result = ingest.ingest(con, [*days, twin], "r1", settings().calendar)
    assert sum(sizes) > 20 * max(sizes)  # held all at once, the files would show
    assert max(held) - held[0] < 3 * max(sizes)
    assert result.rows_in_files == sum(len(p.read_text().splitlines()) - 1 for p in [*days, twin])
    assert result.duplicates_dropped >= 10
    loaded = dict(con.execute("select file_name, rows_loaded from raw.load_log").fetchall())
    assert loaded["events_twin.csv"] == 0 and sum(loaded.values()) == result.rows_loaded
    assert con.execute("select count(*) from raw.events").fetchone()[0] == result.rows_loaded
    assert (
        con.execute("select count(*) from information_schema.tables where table_name like 'incoming%'").fetchone()[0]
        == 0
    )


def test_training_reads_every_buyer_and_a_bounded_sample_of_non_buyers(pipeline) -> None:
    from models_py.modeling import dataset as feats
    from models_py.modeling.train import NEGATIVE_KEEP_RATE, negative_keep_rate

    cfg, summary = pipeline
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        dates = feats.labelled_dates(con, summary.as_of, cfg)[:-1]
        names = feats.product_features(con)
        everyone = feats.labelled(con, dates, names)
        in_small_batches = feats.labelled(con, dates, names, batch_rows=997)
        negatives = feats.negatives(con, dates)
        keep = negative_keep_rate(negatives, max_negatives=negatives // 20)
        sample = feats.labelled(con, dates, names, negative_keep_rate=keep, batch_rows=997)
    assert np.array_equal(in_small_batches.x, everyone.x, equal_nan=True)
    assert np.array_equal(in_small_batches.y, everyone.y)
    assert negatives == int((everyone.y == 0).sum())
    assert negative_keep_rate(negatives, max_negatives=10**9) == NEGATIVE_KEEP_RATE  # small shops: the usual quarter
    assert keep < NEGATIVE_KEEP_RATE
    assert sample.y.sum() == everyone.y.sum()  # every buyer is kept
    kept = int((sample.y == 0).sum())
    assert abs(kept - keep * negatives) < 4 * math.sqrt(keep * negatives)


def test_a_large_shops_validation_cut_off_is_a_uniform_sample_of_its_visitors(pipeline) -> None:
    """Above PROPENSITY_MAX_VALIDATION_ROWS the validation cut-off is a sample of visitors, buyers and non-buyers
    alike (so calibration and metrics need no weights), and the roles cut the sample as they cut the whole."""
    from dataclasses import replace

    from models_py.modeling import dataset as feats
    from models_py.modeling.train import CALIBRATION, HELD_OUT, STOPPING, fit, validation_roles

    cfg, summary = pipeline
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        dates = feats.labelled_dates(con, summary.as_of, cfg)
        day, names = dates[-1], feats.product_features(con)
        everyone = feats.labelled(con, [day], names)
        n, buyers = everyone.y.size, int(everyone.y.sum())
        share = feats.validation_share(con, day, max_rows=n // 2)
        sample = feats.labelled(con, [day], names, visitor_share=share, batch_rows=997)
        assert feats.validation_share(con, day, max_rows=n) == 1.0  # a shop under the bound is read whole
        trained = fit(con, dates[-3:-1], day, names, replace(cfg, max_validation_rows=n // 2))
    assert share == pytest.approx(0.5, abs=1e-4)
    assert set(sample.visitor_id) < set(everyone.visitor_id)
    assert abs(sample.y.size - share * n) < 4 * math.sqrt(share * n)
    assert abs(int(sample.y.sum()) - share * buyers) < 4 * math.sqrt(share * buyers) + 1  # buyers sampled too
    roles = validation_roles(sample.visitor_id, share)
    shares = [float((roles == r).mean()) for r in (STOPPING, CALIBRATION, HELD_OUT)]
    assert shares == pytest.approx([0.5, 0.25, 0.25], abs=0.03)
    assert trained.metrics["validation_share"] == share
    assert trained.metrics["held_out_rows"] == (roles == HELD_OUT).sum()


def test_a_large_shops_past_cut_offs_keep_a_uniform_sample_of_visitors_and_the_scored_night_keeps_all(
    pipeline, own_world
) -> None:
    """Above PROPENSITY_MAX_CUTOFF_VISITORS a past cut-off's features are a uniform sample of its visitors: buyers
    and non-buyers alike, each kept row the same as in a whole build, labels for the same rows. Tonight's date,
    the one scored, keeps every visitor."""
    cfg, summary = pipeline
    rows = """select f.*, l.has_purchased from marts.fct_visitor_features f
              left join marts.fct_visitor_labels l using (as_of_date, visitor_id) order by as_of_date, visitor_id"""
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as wh:
        whole = wh.sql(rows).df()
        visitors = wh.execute("select approx_count_distinct(visitorid) from raw.events").fetchone()[0]
    result = _cli("build", "--from-scratch", env={"PROPENSITY_MAX_CUTOFF_VISITORS": str(visitors // 2)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "past cut-offs keep a uniform 50% of the shop's" in result.stderr
    with duckdb.connect(str(own_world.cfg.warehouse_path), read_only=True) as wh:
        sampled = wh.sql(rows).df()
        shares = dict(wh.execute("select as_of_date, visitor_share from ml.build_plan").fetchall())
    assert sorted(sampled["as_of_date"].unique()) == sorted(whole["as_of_date"].unique())
    kept = sampled.merge(whole, on=["as_of_date", "visitor_id"], how="left", suffixes=("", "_whole"), indicator=True)
    assert (kept["_merge"] == "both").all()  # no visitor the whole build lacks
    for column in [c for c in sampled.columns if c not in ("as_of_date", "visitor_id")]:
        assert kept[column].equals(kept[f"{column}_whole"].astype(kept[column].dtype)), column
    tonight = np.datetime64(summary.as_of)
    for day, part in whole.groupby("as_of_date"):
        mine = sampled[sampled["as_of_date"] == day]
        if day == tonight:
            assert len(mine) == len(part) and shares[summary.as_of] == 1.0
            continue
        assert 0.45 < len(mine) / len(part) < 0.55, day  # a share of visitors known then
        assert mine["has_purchased"].notna().all() == part["has_purchased"].notna().any()  # labels: the same rows
    buyers = [int(t.loc[t["as_of_date"] != tonight, "has_purchased"].sum()) for t in (sampled, whole)]
    assert buyers[1] > 100 and 0.4 < buyers[0] / buyers[1] < 0.6  # buyers are sampled like everyone else
    # Each per-visitor part of a sampled cut-off is worked out for its sample alone, not for every visitor and then
    # dropped by the mart's joins (the values above would not show it; the cost would). The parts are views over the
    # last pass's cut-offs, which must include a sampled one for this to test anything.
    parts = ["int_visitor_windows_aggregated", "int_visitor_item_focus_aggregated",
             "int_visitor_category_affinities_weighed"]  # fmt: skip
    with duckdb.connect(str(own_world.cfg.warehouse_path), read_only=True) as wh:
        for part in parts:
            dates, strangers = wh.execute(
                f"""select count(distinct p.as_of_date) filter (where b.visitor_share < 1),
                           count(*) filter (where f.visitor_id is null)
                    from intermediate.{part} p
                    join ml.build_plan b using (as_of_date)
                    left join marts.fct_visitor_features f using (as_of_date, visitor_id)"""
            ).fetchone()
            assert dates > 0 and strangers == 0, part
    # Training's own samples of a sampled cut-off (its validation visitors, its non-buyers) keep their shares: the
    # mart's hash is independent of theirs (a second golden-ratio hash kept no validation visitor at scale 10).
    past = sampled.loc[sampled["as_of_date"] != tonight]
    ids, days = past["visitor_id"].to_numpy(), (past["as_of_date"].to_numpy() - np.datetime64("1970-01-01", "D"))
    for salt, share in ((VISITOR_SALT, 0.5), (days.astype("timedelta64[D]").astype(np.int64), 0.25)):
        assert abs((hash_unit(ids, salt) < share).mean() - share) < 0.02


def test_a_history_larger_than_dbts_memory_is_rolled_up_in_chunks_of_days_into_the_same_tables(
    pipeline, own_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first night whose history would not fit DuckDB's memory limit (at AUTO_MEMORY_PER_EVENT a loaded event)
    rolls it up in chunks of whole days, each within the limit, then builds as usual: the same daily rollups (first
    sightings across the chunks' edges included) and the same features and labels, value for value. A visitor who
    puts an item of its own in the cart every 20 minutes from the first day to the last has one session: a session
    start is read across every edge, not only where a small-world session happens to cross one. Carts, not views:
    views would move every visitor's conversion rates."""
    cfg, summary = pipeline
    mine = replace(settings(), duckdb_memory_limit="2GB")
    tables = [*ROLLUPS, "marts.fct_visitor_features", "marts.fct_visitor_labels"]
    with session(mine) as con:
        first_ms, last_ms, insomniac, own_item = con.execute(
            "select min(timestamp), max(timestamp), max(visitorid) + 1, max(itemid) + 1 from raw.events"
        ).fetchone()
        con.execute(
            f"insert into raw.events (timestamp, visitorid, event, itemid) "
            f"select range, {insomniac}, 'addtocart', {own_item} from range({first_ms}, {last_ms}, 1200000)"
        )
        events = con.execute("select count(*) from raw.events").fetchone()[0]
        build_plan.drop_derived(con)
        plan = build_plan.plan_night(con, mine, summary.as_of)
    monkeypatch.setattr(connection, "AUTO_MEMORY_PER_EVENT", 2 * 10**9 // (events // 3))  # a third fits
    said: list[str] = []
    dbt.build(mine, plan, said.append)
    chunks = [int(s.rsplit(": ", 1)[1].split()[0].replace(",", "")) for s in said if "rolling up the days" in s]
    assert len(chunks) >= 2 and max(chunks) <= events // 3 < sum(chunks) < events  # the rest: in the build
    with duckdb.connect() as con:
        con.execute(f"attach '{cfg.warehouse_path}' as whole (read_only)")
        con.execute(f"attach '{mine.warehouse_path}' as chunked (read_only)")
        for table in tables:
            chunked = f"(select * from chunked.{table} where visitor_id <> {insomniac})"
            differ = con.execute(
                f"""select count(*) from (
                        (select * from whole.{table} except all select * from {chunked})
                        union all (select * from {chunked} except all select * from whole.{table}))"""
            ).fetchone()[0]
            rows = con.execute(f"select count(*) from {chunked}").fetchone()[0]
            assert rows > 0 and differ == 0, table
        days, sessions = con.execute(
            "select count(*), sum(num_sessions) from chunked.intermediate.int_visitor_days_rolled_up "
            f"where visitor_id = {insomniac}"
        ).fetchone()
        assert days > len(chunks) and sessions == 1
        assert con.execute(
            f"select min(num_sessions_all), max(num_sessions_all) from chunked.marts.fct_visitor_features "
            f"where visitor_id = {insomniac}"
        ).fetchone() == (1, 1)


def test_validation_metrics_come_from_rows_that_neither_stopped_nor_calibrated_the_model(pipeline) -> None:
    """The validation cut-off's visitors have one role each: half stop the boosting, a quarter calibrate and pick
    the threshold, a quarter only measure. The stored metrics are recomputed here from the held-out quarter, and
    they are not what the calibration rows would have said."""
    from models_py.modeling import dataset as feats
    from models_py.modeling import evaluate
    from models_py.modeling.model import probabilities
    from models_py.modeling.train import CALIBRATION, HELD_OUT, STOPPING, validation_roles

    cfg, _ = pipeline
    model = registry.load_pointed_champion(cfg.models_dir)
    day = date.fromisoformat(model.meta.validation_as_of_date)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        va = feats.labelled(con, [day], model.features)
    roles = validation_roles(va.visitor_id)
    assert np.array_equal(roles, validation_roles(va.visitor_id.copy()))  # fixed by the visitor, not by chance
    shares = [float((roles == r).mean()) for r in (STOPPING, CALIBRATION, HELD_OUT)]
    assert shares == pytest.approx([0.5, 0.25, 0.25], abs=0.03)
    p = probabilities(model, va.x, cfg.threads)
    held_out = evaluate.metrics(va.y[roles == HELD_OUT], p[roles == HELD_OUT], model.threshold)
    on_calibration = evaluate.metrics(va.y[roles == CALIBRATION], p[roles == CALIBRATION], model.threshold)
    assert model.meta.metrics["held_out_rows"] == (roles == HELD_OUT).sum()
    for name in ("roc_auc", "log_loss", "ece", "precision", "recall", "f1"):
        assert model.meta.metrics[name] == pytest.approx(held_out[name], abs=1e-6), name
    assert model.meta.metrics["log_loss"] != pytest.approx(on_calibration["log_loss"], abs=1e-6)


def test_the_original_payload_is_scored_by_the_14_feature_companion(pipeline) -> None:
    """The original API's 14-feature payload is scored by the champion's 14-feature companion: a visitor's payload
    gives exactly the companion's batch score of that visitor, and the ranking agrees with the nightly scores
    (Spearman 0.31 on this world's 300 visitors; the full model on the same payload, with its other features
    unknown, gave -0.31 before the companion existed). The 14 features cannot carry more of the nightly ranking
    than that: see the README (a model distilled from the nightly scores does no better)."""
    from scipy.stats import spearmanr

    from models_py.modeling.dataset import SEED_FEATURES
    from models_py.modeling.model import probabilities
    from models_py.modeling.predict import predict_payload

    cfg, summary = pipeline
    model = registry.load_pointed_champion(cfg.models_dir)
    columns = ", ".join(f"f.{c}" for c in SEED_FEATURES)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        rows = con.execute(
            f"""select h.propensity, {columns} from marts.fct_visitor_features f
                join ml.visitor_propensity_score_history h using (visitor_id, as_of_date)
                where f.as_of_date = ? order by hash(f.visitor_id) limit 300""",
            [summary.as_of],
        ).fetchall()
    nightly = np.array([r[0] for r in rows])
    batch = probabilities(model.companion, np.array([r[1:] for r in rows], dtype=np.float32), threads=1)
    on_demand = []
    for r in rows:
        result, unknown = predict_payload(model, json.dumps({"features": dict(zip(SEED_FEATURES, r[1:], strict=True))}))
        assert result["features_used"] == "the original 14" and result["model"] == model.version and not unknown
        on_demand.append(result["propensity_to_buy"])
    assert np.array_equal(np.array(on_demand), batch.astype(float))
    assert spearmanr(nightly, on_demand).statistic >= 0.25


def test_companion_agreement_measures_every_scored_visitor_and_stays_under_its_bound(pipeline) -> None:
    """`propensity companion-agreement`: the companion's Spearman with the night's scores over every scored visitor,
    never above the most a model of the 14 features can reach."""
    from models_py.modeling.companion_agreement import measure, night_model_version

    cfg, summary = pipeline
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        assert night_model_version(con, summary.as_of) == summary.model_version
        result = measure(con, registry.load_version(con, summary.model_version), summary.as_of, threads=1)
        scored = con.execute(
            "select count(*) from ml.visitor_propensity_score_history where as_of_date = ?", [summary.as_of]
        ).fetchone()[0]
    assert result["visitors"] == scored and result["model_version"] == summary.model_version
    assert 0.1 < result["spearman"] <= result["bound"] < 1.0
    printed = _cli("companion-agreement", "--as-of", str(summary.as_of), "--json")
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == pytest.approx(result)
    unscored = _cli("companion-agreement", "--as-of", "2014-01-01")
    assert unscored.returncode == 2 and "2014-01-01 has no scores" in unscored.stderr
    assert "Traceback" not in unscored.stderr


def test_the_nightly_report_opens_with_the_audiences_and_every_image_exists(pipeline) -> None:
    import re

    cfg, summary = pipeline
    index = cfg.reports_dir / summary.run_id / "index.html"
    page = index.read_text()
    assert page.index("Tonight&#x27;s audiences") < page.index("The data")
    for segment in ("hot", "warm", "cold"):
        assert f"<td>{segment}</td>" in page
    assert "expected buyers" in page and "select visitor_id, propensity" in page
    # No backtest was run in this warehouse: the shipped scale-1 result is shown, and said to be one.
    assert "Shipped result" in page and "Out-of-time backtest" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all((index.parent / src).is_file() for src in images)


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless Chromium here (Debian: apt-get install chromium); `make report-check` needs one",
)
def test_the_report_renders_in_headless_chromium_and_a_broken_image_is_named(pipeline, tmp_path: Path) -> None:
    from models_py.ops.report.browser_check import ReportCheckFailed, check

    cfg, summary = pipeline
    folder = tmp_path / "report"
    shutil.copytree(cfg.reports_dir / summary.run_id, folder)
    rendering = check(folder / "index.html")
    assert len(rendering.images) >= 5 and rendering.page_width <= rendering.viewport
    broken = sorted(folder.glob("*.png"))[0]
    broken.write_bytes(broken.read_bytes()[:100])  # a cut PNG: on disk, but no browser can show it
    with pytest.raises(ReportCheckFailed, match=f"image {broken.name} did not load"):
        check(folder / "index.html")
    broken.unlink()
    page = (folder / "index.html").read_text()
    (folder / "index.html").write_text(page.replace("</h1>", "</h1><div style='width:3000px'>wide</div>", 1))
    with pytest.raises(ReportCheckFailed, match=r"did not load; the page is \d+ px wide"):
        check(folder / "index.html")


def test_the_same_trees_calibrated_differently_are_another_model_version() -> None:
    """A version names what turns features into a published probability: the trees, the calibration and the
    threshold. (It hashed the trees alone, so a recalibrated model was taken for the old one and kept its metadata.)"""
    import xgboost as xgb

    from models_py.modeling.train import TrainedModel

    rng = np.random.default_rng(0)
    x = rng.random((200, 3)).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=x[:, 0] > 0.5), num_boost_round=3)

    def model(slope: float, threshold: float) -> TrainedModel:
        return TrainedModel(booster, LogOddsCalibration(slope, 0.0), threshold, ["a", "b", "c"], [], date(2015, 1, 2),
                            {}, {})  # fmt: skip

    same = registry.scoring_sha256(model(1.0, 0.3))
    assert registry.scoring_sha256(model(1.0, 0.3)) == same
    assert registry.scoring_sha256(model(1.1, 0.3)) != same
    assert registry.scoring_sha256(model(1.0, 0.4)) != same


def test_check_report_without_a_report_names_the_folder(tmp_path: Path) -> None:
    result = _cli("check-report", env={"PROPENSITY_REPORTS_DIR": str(tmp_path)})
    assert result.returncode == 2 and f"no report under {tmp_path}" in result.stderr
    assert "Traceback" not in result.stderr
