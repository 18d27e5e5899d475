"""Running it like production: kills at every stage, a second writer, unwritable paths, drift, registry, backfill."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from models_py.config import settings
from models_py.data.events_file import HEADER
from models_py.modeling import train
from models_py.ops import promotion, registry
from models_py.warehouse import publish
from models_py.warehouse.connection import session
from models_py.warehouse.schema import score_history_file
from tests.helpers import cli, land_next_day, served_sha, sha

KILL_POINTS = (
    "ingest:commit", "dbt build", "train", "promote", "validate features", "drift", "score", "validate scores",
    "publish", "publish:swap", "report",
)  # fmt: skip


@pytest.fixture
def world(own_world) -> dict[str, str]:
    """A private copy of the pipeline's folders; the environment that points the CLI at it."""
    return own_world.env


def _cli(env: dict[str, str], *args: str, extra: dict | None = None):
    return cli(*args, env={**env, **(extra or {})})


def test_killed_at_every_stage_the_rerun_completes_without_partial_publish_or_duplicates(world) -> None:
    from models_py.warehouse.serving import ServingFiles

    serving = Path(world["PROPENSITY_SERVING"])
    current = ServingFiles(serving).current
    served = sha(current)
    tonight = land_next_day(world)
    reader = duckdb.connect(str(serving), read_only=True)  # held open by "marketing" through every run below
    before = reader.execute("select count(*), max(as_of_date) from visitor_propensity_scores").fetchone()
    retrain_nightly = {"PROPENSITY_RETRAIN_EVERY_DAYS": "0"}  # so that train and promote run on every attempt
    for point in KILL_POINTS:
        result = _cli(world, "nightly", extra={**retrain_nightly, "PROPENSITY_FAULT_INJECT": point})
        assert result.returncode == -9, f"{point}: {result.returncode}\n{result.stderr[-2000:]}"
        if point != "report":  # killed before the swap: what marketing reads is exactly what it was
            assert sha(current) == served, point
            seen = reader.execute("select count(*), max(as_of_date) from visitor_propensity_scores").fetchone()
            assert seen == before, point
    result = _cli(world, "nightly", extra=retrain_nightly)
    assert result.returncode == 0, result.stderr[-3000:]
    # The reader kept its connection: its next query reads tonight's scores, whole.
    assert reader.execute("select max(as_of_date) from visitor_propensity_scores").fetchone() == (tonight,)
    reader.close()
    with duckdb.connect(world["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        eligible = con.execute(
            "select count(*) from marts.fct_visitor_features where as_of_date = ?", [tonight]
        ).fetchone()[0]
        history = con.execute(
            "select count(*), count(distinct (visitor_id, as_of_date)) from ml.visitor_propensity_score_history"
        ).fetchone()
        loads = con.execute(
            "select count(*) from raw.load_log where file_name = ?", [f"events_{tonight - timedelta(days=1)}.csv"]
        ).fetchone()[0]
        duplicated_events = con.execute(
            "select count(*) - count(distinct (timestamp, visitorid, event, itemid, transactionid)) from raw.events"
        ).fetchone()[0]
        killed = con.execute(
            "select count(*) from ml.run_log where status = 'failed' and error like 'ended without recording%'"
        ).fetchone()[0]
        running = con.execute("select count(*) from ml.run_log where status = 'running'").fetchone()[0]
    assert history[0] == history[1]
    assert loads == 1 and duplicated_events == 0
    assert killed == len(KILL_POINTS) and running == 0  # every killed run stays visible, closed by the next run
    with duckdb.connect(str(serving), read_only=True) as con:
        assert con.execute(
            "select count(*), count(distinct visitor_id), min(as_of_date), max(as_of_date) "
            "from visitor_propensity_scores"
        ).fetchone() == (eligible, eligible, tonight, tonight)
    assert not list(serving.parent.glob(".*.tmp"))


def test_a_rerun_reuses_tonights_build_until_what_it_read_changes(own_world, monkeypatch, tmp_path: Path) -> None:
    """A night that failed after its build (a gate, a full disk) is run again: the build is not redone, unless a
    loaded file, a setting dbt reads or the project's SQL changed since, or a build was left unfinished."""
    from jobs.nightly import run_nightly
    from models_py.warehouse import build_plan, dbt

    cfg = own_world.cfg
    said: list[str] = []
    again = run_nightly(cfg, say=said.append, force=True)
    assert any("already built" in line for line in said) and not any(line.startswith("dbt |") for line in said)
    with duckdb.connect(str(cfg.serving_path), read_only=True) as con:
        assert con.execute("select any_value(run_id), count(*) from visitor_propensity_scores").fetchone() == (
            again.run_id,
            again.visitors_scored,
        )
    with session(cfg, read_only=True) as con:
        plan = build_plan.plan_night(con, cfg, again.as_of)
        assert dbt.build_is_current(con, cfg, plan)
        digest = dbt.inputs_digest(con, cfg)
    with duckdb.connect(str(cfg.warehouse_path)) as con:  # another file loaded
        con.execute("insert into raw.load_log (file_name, sha256, kind) values ('late.csv', 'x', 'catalogue')")
        assert dbt.inputs_digest(con, cfg) != digest
        con.execute("delete from raw.load_log where file_name = 'late.csv'")
        assert dbt.inputs_digest(con, cfg) == digest
        monkeypatch.setenv("PROPENSITY_KEEP_NIGHTLY_FEATURES", str(cfg.keep_nightly_features + 1))
        assert dbt.inputs_digest(con, settings()) != digest  # a setting the models read
        monkeypatch.delenv("PROPENSITY_KEEP_NIGHTLY_FEATURES")
        project = tmp_path / "dbt_project"
        shutil.copytree(cfg.dbt_project_dir, project, ignore=shutil.ignore_patterns("target", "logs"))
        with monkeypatch.context() as patched:
            patched.setattr(type(cfg), "dbt_project_dir", project)
            assert dbt.inputs_digest(con, cfg) == digest
            with (project / "macros" / "count_where.sql").open("a") as sql:
                sql.write("\n")
            assert dbt.inputs_digest(con, cfg) != digest  # the project's SQL

    def dbt_fails(*args, **kwargs):
        raise dbt.DbtError("dbt build failed")

    monkeypatch.setattr(dbt, "run_dbt", dbt_fails)
    with session(cfg, read_only=True) as con:
        assert dbt.build_is_current(con, cfg, plan)
    with pytest.raises(dbt.DbtError):
        dbt.build(cfg, plan)
    with session(cfg, read_only=True) as con:
        assert not dbt.build_is_current(con, cfg, plan)  # a build that did not finish is not reused


def test_a_second_writer_gets_a_clear_message_after_a_bounded_retry(world) -> None:
    holder = duckdb.connect(world["PROPENSITY_WAREHOUSE"])
    try:
        result = _cli(world, "ingest")
    finally:
        holder.close()
    assert result.returncode == 3
    assert "held by another process" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PROPENSITY_DUCKDB_MEMORY_LIMIT", "lots"),
        ("PROPENSITY_THREADS", "two"),
        ("PROPENSITY_DRIFT_FAIL_PSI", "high"),
        ("PROPENSITY_ENGINE", "oracle"),
    ],
)
def test_a_mistyped_setting_stops_the_run_up_front_naming_the_variable(tmp_path: Path, variable, value) -> None:
    serving = tmp_path / "serving.duckdb"
    result = _cli(
        {"PROPENSITY_SERVING": str(serving), "PROPENSITY_DATA_DIR": str(tmp_path)}, "nightly", extra={variable: value}
    )
    assert result.returncode == 2
    assert variable in result.stderr and repr(value) in result.stderr and "Traceback" not in result.stderr
    assert not serving.exists()


def test_an_auto_duckdb_memory_limit_grows_with_the_shop_within_half_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROPENSITY_DUCKDB_MEMORY_LIMIT=auto (the default): 2 GB for a small shop, 220 bytes per loaded event for a
    larger one (scale 10's first night needs ~6 GB to sort its history) in coarse steps, never more than half the
    machine; a size given is used as given. Only dbt gets more: the job's own queries stream."""
    from models_py.warehouse import connection, dbt

    half_the_machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    assert connection.memory_limit("3GB", 10**9) == "3GB"
    assert connection.memory_limit("auto") == connection.memory_limit("auto", 2_800_000) == "2048MiB"  # scale 1
    assert connection.memory_limit("auto", 27_300_000) == "6144MiB"  # scale 10: 5.6 GiB, in steps of 1 GiB
    # A day's more events keep the limit, so dbt's profile, and its parsed project, stay as they were.
    assert connection.memory_limit("auto", 27_500_000) == "6144MiB"
    assert connection.memory_limit("auto", 30_000_000) == "7168MiB"
    assert connection.memory_limit("auto", 10**12) == f"{half_the_machine >> 20}MiB"
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw; create table raw.events as select range as timestamp from range(3)")
        assert connection.loaded_events(con) == 3
    with (
        connection.connect(path, "auto", read_only=True) as con,
        duckdb.connect(config={"memory_limit": "2GiB"}) as ref,
    ):
        setting = "select current_setting('memory_limit')"
        assert con.execute(setting).fetchone() == ref.execute(setting).fetchone()  # the job's queries stream
    assert connection.loaded_events(duckdb.connect()) == 0

    class Input(io.StringIO):
        def close(self) -> None:
            self.sent = json.loads(self.getvalue())

    class FinishedDbt:  # what run_dbt hands its dbt process, and reads of it
        def __init__(self) -> None:
            self.stdin, self.stdout = Input(), []

        def poll(self) -> None:
            return None

        def wait(self) -> int:
            return 0

    started: list[FinishedDbt] = []
    monkeypatch.setattr(dbt.subprocess, "Popen", lambda *_, **__: started.append(FinishedDbt()) or started[-1])
    monkeypatch.setattr(dbt, "_spare", None)
    dbt.run_dbt(replace(settings(), duckdb_memory_limit="auto"), ["build"], events=27_300_000)
    assert started[0].stdin.sent["env"]["PROPENSITY_DUCKDB_MEMORY_LIMIT"] == connection.memory_limit("auto", 27_300_000)


def test_a_warehouse_built_on_one_engine_is_refused_on_the_other(world) -> None:
    """The nightly job on Spark over DuckDB's marts: exit 2 before anything is built (whether or not the [spark]
    extra is installed, the message names the setting), and the scores marketing reads stay as they were."""
    before = served_sha(settings())
    result = _cli(world, "nightly", "--force", extra={"PROPENSITY_ENGINE": "spark"})
    assert result.returncode == 2, result.stderr
    assert "PROPENSITY_ENGINE=spark" in result.stderr and "Traceback" not in result.stderr
    assert served_sha(settings()) == before


def test_unwritable_or_full_serving_paths_give_a_clear_error_and_keep_the_old_file(world, monkeypatch) -> None:
    from models_py.warehouse import serving

    cfg = settings()
    files = serving.ServingFiles(cfg.serving_path)
    served = {p: sha(p) for p in (files.database, files.current)}
    blocker = cfg.data_dir / "a-file"
    blocker.write_text("not a folder")
    unwritable = replace(cfg, serving_path=blocker / "serving.duckdb")
    with session(cfg):
        day = publish.latest_scored_date(cfg)
        with pytest.raises(serving.PublishError, match="cannot write the serving files .*a-file/serving.duckdb"):
            serving.publish(unwritable, day, day, "r1")

        def full_disk(*_args, **_kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(serving.os, "replace", full_disk)
        with pytest.raises(serving.PublishError, match="the disk is full"):
            serving.publish(cfg, day, day, "r2")
        night = score_history_file(cfg.score_history_dir, day)
        kept = sha(night)
        scores = pq.read_table(night, read_dictionary=["segment", "reason_1", "reason_2", "reason_3"])
        stale = cfg.score_history_dir / f".{night.name}.1.tmp"  # left by a run killed while writing
        stale.write_bytes(b"partial")
        with pytest.raises(serving.PublishError, match="cannot write the score history .*the disk is full"):
            publish.write_history(cfg, scores.slice(0, 10), day)
        assert sha(night) == kept and not list(cfg.score_history_dir.glob(".*.tmp"))
    assert {p: sha(p) for p in served} == served
    assert not list(files.folder.rglob(".*.tmp")) and not list(cfg.serving_path.parent.glob(".*.tmp"))


def test_tonight_is_compared_with_the_last_scored_night_read_from_its_own_file(tmp_path: Path) -> None:
    """The scores gate's mean and row count and the score drift compare tonight with the last scored night before
    it (each night read from its own file, not found among every night's), and only with the same model's."""
    from datetime import date
    from types import SimpleNamespace

    import numpy as np
    import pyarrow as pa

    from models_py.modeling.population import edges_of, psi, shares
    from models_py.ops import drift
    from models_py.warehouse import schema

    cfg = SimpleNamespace(score_history_dir=tmp_path / "history")
    rng = np.random.default_rng(3)
    nights = {date(2015, 9, 16): ("A", 40), date(2015, 9, 17): ("A", 50), date(2015, 9, 19): ("B", 60)}
    scores = {}
    for day, (model, n) in nights.items():
        scores[day] = rng.beta(1, 20 + n, n)
        publish.write_history(cfg, pa.table({
            "visitor_id": np.arange(n, dtype=np.int64), "as_of_date": pa.array([day] * n, pa.date32()),
            "propensity": scores[day], "decile": np.ones(n, np.int8), "segment": ["cold"] * n,
            **{f"reason_{k}": pa.nulls(n, pa.string()) for k in (1, 2, 3)}, "model_version": [model] * n,
            "run_id": [f"run-{day}"] * n, "scored_at": pa.array([np.datetime64("2015-09-20T04:00", "s")] * n),
        }), day)  # fmt: skip
    tonight, before = date(2015, 9, 18), date(2015, 9, 17)  # 09-19 is later, 09-16 older: neither is compared
    con = duckdb.connect()
    schema.ensure(con, cfg.score_history_dir)
    count, mean = publish.previous_scores(con, cfg, tonight, "A")
    assert count == 50 and mean == pytest.approx(scores[before].mean())
    assert publish.previous_scores(con, cfg, tonight, "B") == (50, None)  # another model's mean is not compared
    assert publish.previous_scores(con, cfg, date(2015, 9, 16), "A") is None

    now = rng.beta(1, 60, 80)
    shifted = drift.score_drift(con, "r", tonight, cfg.score_history_dir, before, now, 0.1, 0.25, "A")
    edges = edges_of(scores[before])
    assert shifted.psi == pytest.approx(psi(shares(scores[before], edges), shares(now, edges)), abs=1e-12)
    stored = con.execute("select previous_as_of_date, previous_mean_propensity from ml.score_drift").fetchall()
    assert stored == [(before, pytest.approx(scores[before].mean()))]
    assert drift.score_drift(con, "r", tonight, cfg.score_history_dir, before, now, 0.1, 0.25, "B") is None


def test_drift_above_the_failure_level_stops_the_run_before_publishing(world) -> None:
    served = served_sha(settings())
    result = _cli(
        world, "nightly", "--force", extra={"PROPENSITY_DRIFT_WARN_PSI": "0", "PROPENSITY_DRIFT_FAIL_PSI": "0"}
    )
    assert result.returncode == 4, result.stderr[-2000:]
    assert "drift gate failed" in result.stderr and "PSI" in result.stderr
    assert served_sha(settings()) == served
    with duckdb.connect(world["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        stored = con.execute(
            "select count(*), count(distinct feature) from ml.feature_drift "
            "where run_id = (select max(run_id) from ml.feature_drift)"
        ).fetchone()
    assert stored[0] > 0 and stored[0] == stored[1]


def test_drift_is_measured_and_stored_by_the_nightly_run(pipeline) -> None:
    """Every feature's PSI is stored, and it is the PSI of tonight's drift sample against the model's profile:
    recomputed here from the mart, each stored value must match."""
    from models_py.modeling.population import psi, shares
    from models_py.ops import drift

    cfg, summary = pipeline
    model = registry.load_pointed_champion(cfg.models_dir)
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        stored = dict(
            con.execute("select feature, psi from ml.feature_drift where run_id = ?", [summary.run_id]).fetchall()
        )
        sample = drift.mart_sample(con, model, summary.as_of)
    assert list(stored) and set(stored) == set(model.features)
    for j, name in enumerate(model.features):
        ref = model.meta.population_profile[name]
        assert stored[name] == pytest.approx(psi(ref["shares"], shares(sample[:, j], ref["edges"])), abs=1e-9), name


def test_promotion_needs_the_margin_and_people_can_promote_and_roll_back(world, monkeypatch) -> None:
    with session(settings()) as con:
        champion = registry.champion(con)[0]
        as_of = publish.latest_scored_date(settings())
        monkeypatch.setenv("PROPENSITY_PROMOTION_MARGIN", "1.0")  # no model beats another by a whole AUC
        monkeypatch.setenv("PROPENSITY_TRAINING_CUTOFFS", "2")  # a different model from the champion
        meta = registry.store(con, settings(), train.train(con, as_of, settings()), as_of)
        assert not promotion.promote_if_better(con, meta, settings(), lambda _: None)
        assert registry.champion(con)[0] == champion
        status = con.execute("select status from ml.model_registry where model_version = ?", [meta.version])
        assert status.fetchone()[0] == "challenger"
    promoted = _cli(world, "promote", meta.version)
    assert promoted.returncode == 0, promoted.stderr
    assert _cli(world, "promote", "no-such-version").returncode == 1
    rolled = _cli(world, "rollback")
    assert rolled.returncode == 0 and champion in rolled.stdout
    with session(settings(), read_only=True) as con:
        assert registry.champion(con)[0] == champion
        assert (
            con.execute(
                "select count(*) from ml.model_metrics where model_version = ? and metric = 'roc_auc'", [meta.version]
            ).fetchone()[0]
            == 1
        )


def test_backfill_runs_days_in_order_and_serving_keeps_the_latest_day(world) -> None:
    with duckdb.connect(world["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        latest = con.execute("select max(as_of_date) from ml.visitor_propensity_score_history").fetchone()[0]
    first = latest - timedelta(days=1)
    result = _cli(world, "backfill", "--from", str(first), "--to", str(latest))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.index(str(first)) < result.stdout.index(str(latest))
    with duckdb.connect(world["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        days = con.execute(
            "select as_of_date, count(*), count(distinct visitor_id) from ml.visitor_propensity_score_history "
            "group by 1 order by 1"
        ).fetchall()
    assert [d for d, _, _ in days] == [first, latest] and all(n == m for _, n, m in days)
    # The past day was scored by a model trained by then, never by the champion that learned from later labels.
    with duckdb.connect(world["PROPENSITY_WAREHOUSE"], read_only=True) as con:
        scored_by = dict(con.execute(
            """select h.as_of_date, max(r.as_of_date) from ml.visitor_propensity_score_history h
               join ml.model_registry r using (model_version) group by 1"""
        ).fetchall())  # fmt: skip
        champion_as_of = con.execute("select as_of_date from ml.model_registry where status = 'champion'").fetchone()
    assert scored_by[first] <= first and champion_as_of == (scored_by[latest],)
    with duckdb.connect(world["PROPENSITY_SERVING"], read_only=True) as con:
        assert con.execute("select distinct as_of_date from visitor_propensity_scores").fetchall() == [(latest,)]
    too_late = _cli(world, "backfill", "--from", str(latest), "--to", str(latest + timedelta(days=3)), "--force")
    assert too_late.returncode == 2 and "after the last landed shop day" in too_late.stderr


def test_the_score_history_is_a_file_a_night_and_an_older_warehouses_table_becomes_files(tmp_path: Path) -> None:
    """A warehouse from before keeps its history as a table: the next session writes each day to its own file, drops
    the table and reads the files through a view of the same name and columns; a moved warehouse reads its own."""
    from models_py.warehouse import schema

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        body = ", ".join(f"{c} {t}" for c, t in schema.SCORE_HISTORY_COLUMNS)
        con.execute(f"create schema ml; create table {schema.SCORE_HISTORY} ({body})")
        con.execute(
            f"""insert into {schema.SCORE_HISTORY} select 10 - i, date '2015-09-01' + cast(i % 2 as integer),
                i / 10, 1 + i % 10, 'warm', case when i < 3 then 'num_views_7d' end, null, null, 'm1', 'r1',
                timestamp '2015-09-02 05:00' from range(10) t(i)"""
        )
        rows = con.execute(f"select * from {schema.SCORE_HISTORY} order by all").fetchall()
        columns = con.execute(f"describe {schema.SCORE_HISTORY}").fetchall()
        schema.ensure(con, tmp_path / "history")
        assert con.execute(f"select * from {schema.SCORE_HISTORY} order by all").fetchall() == rows
        assert [c[:2] for c in con.execute(f"describe {schema.SCORE_HISTORY}").fetchall()] == [c[:2] for c in columns]
        assert con.execute("select count(*) from duckdb_tables() where table_name = 'visitor_propensity_score_history'"
                           ).fetchone() == (0,)  # fmt: skip
        written = sorted(p.name for p in (tmp_path / "history").glob("scores_*.parquet"))
        assert written == ["scores_2015-09-01.parquet", "scores_2015-09-02.parquet"]
        night = pq.read_table(tmp_path / "history" / written[0])
        assert night["visitor_id"].to_pylist() == sorted(night["visitor_id"].to_pylist())  # in visitor order

        schema.ensure(con, tmp_path / "moved")  # the warehouse now lives elsewhere, with no night scored yet
        assert con.execute(f"select count(*), max(as_of_date) from {schema.SCORE_HISTORY}").fetchone() == (0, None)


def test_landing_files_that_point_outside_the_landing_folder_are_refused(tmp_path: Path) -> None:
    from models_py.data.landing import IngestError, ready_files

    landing = tmp_path / "landing"
    landing.mkdir()
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(HEADER + "\n")
    (landing / "events_2015-09-18.csv").symlink_to(outside)
    with pytest.raises(IngestError, match="points outside the landing folder"):
        ready_files(landing)


def test_no_pickle_anywhere_in_the_code() -> None:
    root = Path(__file__).resolve().parent.parent
    sources = [p for d in ("models_py", "jobs") for p in (root / d).rglob("*.py")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert "import pickle" not in text and "joblib" not in text, path


def test_the_spark_sources_get_each_run_once_and_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ingesting run's events become one Parquet file, written once; an unloaded run's file goes; a copy that
    no longer holds what the warehouse holds stops the night with a named error. Unchanged tables are not
    rewritten."""
    import pyarrow.parquet as pq

    from models_py.config import folder_env
    from models_py.errors import JobFailed
    from models_py.warehouse import schema, spark

    for key, value in folder_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    cfg = settings()
    events = cfg.spark_sources_dir / "raw.events"
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        schema.ensure(con, cfg.score_history_dir)
        for run, first_ms in (("run-a", 1_000), ("run-b", 5_000)):
            con.execute(f"insert into raw.events select {first_ms} + i, i, 'view', 1, null from range(3) t(i)")
            con.execute(
                "insert into raw.load_log (file_name, sha256, kind, rows_in_file, rows_loaded, duplicates_dropped, "
                "first_event_ms, last_event_ms, loaded_at, run_id) "
                "values (?, 'sha', 'events', 3, 3, 0, ?, ?, now(), ?)",
                [f"events_{run}.csv", first_ms, first_ms + 2, run],
            )
        spark.export_sources(con, cfg)
        files = sorted(p.name for p in events.glob("*.parquet"))
        assert files == ["run-run-a.parquet", "run-run-b.parquet"]
        assert [pq.ParquetFile(events / f).metadata.num_rows for f in files] == [3, 3]
        written = {p: p.stat().st_mtime_ns for p in cfg.spark_sources_dir.rglob("*.parquet")}
        spark.export_sources(con, cfg)  # nothing new: nothing rewritten
        assert {p: p.stat().st_mtime_ns for p in cfg.spark_sources_dir.rglob("*.parquet")} == written

        con.execute("delete from raw.events where timestamp >= 5000")  # what `propensity unload` does
        con.execute("delete from raw.load_log where run_id = 'run-b'")
        spark.export_sources(con, cfg)
        assert sorted(p.name for p in events.glob("*.parquet")) == ["run-run-a.parquet"]

        con.execute("insert into raw.events values (9000, 1, 'view', 1, null)")  # a row no load accounts for
        with pytest.raises(JobFailed, match="holds 3 rows, the warehouse 4"):
            spark.export_sources(con, cfg)


def test_dbt_runs_in_a_process_started_ahead_as_its_command_line_would() -> None:
    """The next dbt call's process imports dbt ahead of the call (warm_up); the call then runs as the `dbt` command
    line would: its exit code and its words reach the job. One never used ends when its input closes."""
    from models_py.warehouse import dbt

    dbt.warm_up()
    ahead = dbt._spare
    with pytest.raises(dbt.DbtError, match="No such option"):
        dbt.run_dbt(settings(), ["parse", "--no-such-option"])
    assert ahead is not None and ahead.returncode == 2  # dbt's exit code for a usage error
    dbt.warm_up()
    unused = dbt._spare
    assert unused is not None and unused is not ahead
    unused.stdin.close()
    assert unused.wait(timeout=120) == 0
    dbt._spare = None


def test_the_nightly_job_starts_without_importing_training_or_scoring() -> None:
    """XGBoost, scikit-learn and matplotlib (~1.5 s) import on a thread while ingest and dbt run (jobs.nightly's
    STAGES_AFTER_THE_BUILD), so nothing the night needs before its build may pull them in at import time."""
    probe = "import sys, jobs.nightly; print(sorted({'xgboost', 'sklearn', 'matplotlib'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout
