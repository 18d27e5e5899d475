"""The Spark engine (the `[spark]` extra, Java 17): the nightly job with PROPENSITY_ENGINE=spark, on the small world
in two nights, builds the features and labels DuckDB builds and publishes the scores DuckDB publishes. Skipped where
the extra is not installed (`make setup` keeps the default light; `make setup-spark` and `.ci/run` install it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from models_py.config import folder_env, settings
from models_py.warehouse import build_plan
from models_py.warehouse.connection import session

pytest.importorskip("pyspark", reason="the [spark] extra is not installed: pip install -e '.[spark]'")
pytest.importorskip("dbt.adapters.spark", reason="the [spark] extra is not installed: pip install -e '.[spark]'")

KEYS = ("as_of_date", "visitor_id")


def _mismatches(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, int]:
    """Per column, the rows where Spark's table (the Spark warehouse file's view, database ``s``) and DuckDB's
    (database ``d``) differ: integers exactly, other numbers to 1e-9 (relative above 1), a row on one side only
    counting for every column."""
    types = dict(con.execute(f"select column_name, column_type from (describe d.{table})").fetchall())
    checks = []
    for column, kind in types.items():
        if column in KEYS:
            continue
        if kind in ("DOUBLE", "FLOAT") or kind.startswith("DECIMAL"):
            # A null on one side only makes the difference null: coalesce counts it as a mismatch.
            same = f"""(d.{column} is null and s.{column} is null) or coalesce(abs(d.{column} - s.{column})
                       <= 1e-9 * greatest(1, abs(d.{column})), false)"""
        else:
            same = f"d.{column} is not distinct from s.{column}"
        checks.append(f"count(*) filter (where d.visitor_id is null or s.visitor_id is null or not ({same}))")
    counts = con.execute(
        f"select {', '.join(checks)} from d.{table} d full join s.{table} s using ({', '.join(KEYS)})"
    ).fetchone()
    columns = [c for c in types if c not in KEYS]
    return {c: n for c, n in zip(columns, counts, strict=True) if n}


def test_the_nightly_job_on_spark_publishes_the_scores_duckdb_publishes(
    two_nights, small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both engines run the same two nights (the last day held back, then landed): the first night builds every
    date and trains, the second folds one day in and scores with the first night's model."""
    from jobs.nightly import run_nightly
    from models_py.ops.unload import unload

    duck, duck_first, duck_second, _ = two_nights
    landing = tmp_path / "data" / "landing"
    shutil.copytree(small_world / "landing", landing)
    last = sorted(landing.glob("events_*.csv"))[-1]
    held = last.rename(tmp_path / last.name)
    for key, value in {**folder_env(tmp_path), "PROPENSITY_ENGINE": "spark"}.items():
        monkeypatch.setenv(key, value)
    first = run_nightly(settings(), say=lambda _: None)
    held.rename(last)
    second = run_nightly(settings(), say=lambda _: None)
    cfg = settings()

    # The same models: training read the same rows from Spark's files as from DuckDB's tables.
    assert (first.trained, first.model_version) == (duck_first.trained, duck_first.model_version)
    assert (second.as_of, second.model_version) == (duck_second.as_of, duck_second.model_version)
    with duckdb.connect() as con:
        con.execute(f"attach '{duck.warehouse_path}' as d (read_only)")
        con.execute(f"attach '{cfg.warehouse_path}' as s (read_only)")
        # Every feature and label of every date both built.
        for mart in (build_plan.FEATURES_MART, build_plan.LABELS_MART):
            assert con.execute(f"select count(*) from s.{mart}").fetchone()[0] > 10_000
            assert _mismatches(con, mart) == {}, mart
        # The night kept the folded states DuckDB kept (older ones dropped on Spark too).
        folded = "intermediate.int_visitor_totals_folded"
        assert sorted(r[0] for r in con.execute(f"select distinct as_of_date from s.{folded}").fetchall()) == sorted(
            r[0] for r in con.execute(f"select distinct as_of_date from d.{folded}").fetchall()
        )
        # Both nights' published scores: probabilities to 1e-6, everything else equal.
        history = "ml.visitor_propensity_score_history"
        differ = con.execute(
            f"""select count(*) filter (where d.visitor_id is null or s.visitor_id is null
                    or abs(d.propensity - s.propensity) > 1e-6 or d.decile <> s.decile or d.segment <> s.segment
                    or d.reason_1 is distinct from s.reason_1 or d.reason_2 is distinct from s.reason_2
                    or d.reason_3 is distinct from s.reason_3 or d.model_version <> s.model_version),
                    count(*), count(distinct as_of_date)
                from d.{history} d full join s.{history} s using (as_of_date, visitor_id)"""
        ).fetchone()
        assert differ[0] == 0 and differ[1] > 50_000 and differ[2] == 2
    with duckdb.connect(str(cfg.serving_path), read_only=True) as con:
        served = con.execute("select as_of_date, count(*) from visitor_propensity_scores group by 1").fetchall()
    assert served == [(second.as_of, second.visitors_scored)]
    # Spark's own copy of the score history: one partition per night, the night's rows.
    spark_history = cfg.spark_tables_dir / "ml.db" / "visitor_propensity_score_history"
    with duckdb.connect() as con:
        nights = con.execute(
            f"""select as_of_date, count(*) from read_parquet('{spark_history}/*/*.parquet', hive_partitioning = true,
                hive_types = {{'as_of_date': date}}) group by 1 order by 1"""
        ).fetchall()
    assert nights == [(first.as_of, first.visitors_scored), (second.as_of, second.visitors_scored)]

    # Unloading the last day on Spark drops Spark's derived tables and that night's scores; the next night would
    # build every date anew.
    with session(cfg) as con:
        unload(con, cfg, last.name)
        assert build_plan.built(con, build_plan.FEATURES_MART) == set()
    assert not (cfg.spark_tables_dir / "marts.db").exists()
    assert sorted(p.name for p in spark_history.glob("as_of_date=*")) == [f"as_of_date={first.as_of}"]
    assert sorted(p.name for p in cfg.score_history_dir.glob("scores_*")) == [f"scores_{first.as_of}.parquet"]
