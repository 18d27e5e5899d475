"""The dbt project on Apache Spark (the `[spark]` extra, Java 17): the same models, run by dbt-spark's session
method in a local Spark, give the features and labels DuckDB gives, for every visitor and cut-off of the small
world. Skipped where the extra is not installed (`make setup` keeps the default light)."""

from __future__ import annotations

import duckdb
import pytest

from models_py.warehouse import build_plan, dbt

pytest.importorskip("pyspark", reason="the [spark] extra is not installed: pip install -e '.[spark]'")
pytest.importorskip("dbt.adapters.spark", reason="the [spark] extra is not installed: pip install -e '.[spark]'")

# What the models read: the raw tables and the job's build plan, handed to Spark as Parquet folders.
SOURCES = ("raw.events", "raw.item_properties", "raw.category_tree", "raw.load_log", "ml.build_plan")


def _mismatches(con: duckdb.DuckDBPyConnection, mart: str, spark_folder: str, dates: list) -> dict[str, int]:
    """Per column, the rows where Spark's mart and DuckDB's differ on the built dates: integers exactly, other
    numbers to 1e-9 (relative above 1), a row on one side only counting for every column."""
    con.execute(
        f"""create or replace temp view spark_mart as
            select * replace (cast(as_of_date as date) as as_of_date)
            from read_parquet('{spark_folder}/*/*.parquet', hive_partitioning = true)"""
    )
    listed = ", ".join(f"date '{d}'" for d in dates)
    con.execute(f"create or replace temp view duckdb_mart as select * from marts.{mart} where as_of_date in ({listed})")
    types = dict(con.execute("select column_name, column_type from (describe duckdb_mart)").fetchall())
    checks = []
    for column, kind in types.items():
        if column in ("as_of_date", "visitor_id"):
            continue
        if kind in ("DOUBLE", "FLOAT") or kind.startswith("DECIMAL"):
            # A null on one side only makes the difference null: coalesce counts it as a mismatch.
            same = f"""(d.{column} is null and s.{column} is null) or coalesce(abs(d.{column} - s.{column})
                       <= 1e-9 * greatest(1, abs(d.{column})), false)"""
        else:
            same = f"d.{column} is not distinct from s.{column}"
        checks.append(f"count(*) filter (where d.visitor_id is null or s.visitor_id is null or not ({same}))")
    counts = con.execute(
        f"""select {", ".join(checks)} from duckdb_mart d full join spark_mart s
            on d.as_of_date = s.as_of_date and d.visitor_id = s.visitor_id"""
    ).fetchone()
    columns = [c for c in types if c not in ("as_of_date", "visitor_id")]
    return {c: n for c, n in zip(columns, counts, strict=True) if n}


def test_spark_builds_the_features_and_labels_duckdb_builds(own_world, tmp_path, monkeypatch) -> None:
    """Every date DuckDB's marts hold, built on Spark in two builds: all but the newest dates as a first build (no
    state to fold from), then the newest as a night does (folded from the state the first build left, older
    states dropped), so both of Spark's paths are compared."""
    cfg = own_world.cfg
    parquet, spark = tmp_path / "parquet", tmp_path / "spark"
    monkeypatch.setenv("PROPENSITY_PARQUET_DIR", str(parquet))
    monkeypatch.setenv("PROPENSITY_SPARK_DIR", str(spark))
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        features = sorted(build_plan.built(con, build_plan.FEATURES_MART))
        labels = sorted(build_plan.built(con, build_plan.LABELS_MART))
    assert len(features) >= 8 and len(labels) >= 7
    nights = [
        build_plan.BuildPlan(features=features[:-1], labels=labels[:-1]),
        build_plan.BuildPlan(features=features[-1:], labels=labels[-1:]),
    ]
    for night in nights:
        with duckdb.connect(str(cfg.warehouse_path)) as con:
            build_plan.write(con, cfg, night)
            for table in SOURCES:
                (parquet / table).mkdir(parents=True, exist_ok=True)
                con.execute(f"copy {table} to '{parquet / table / 'part-0.parquet'}' (format parquet)")
        dbt.run_dbt(cfg, ["build", "--target", "spark", "--exclude-resource-type", "unit_test"])
    with duckdb.connect(str(cfg.warehouse_path), read_only=True) as con:
        for mart, dates in (("fct_visitor_features", features), ("fct_visitor_labels", labels)):
            listed = ", ".join(f"date '{d}'" for d in dates)
            rows = con.execute(f"select count(*) from marts.{mart} where as_of_date in ({listed})").fetchone()[0]
            assert rows > 10_000
            assert _mismatches(con, mart, str(spark / "tables" / "marts.db" / mart), dates) == {}, mart
        # The night kept only the newest two folded states, as on DuckDB: the old ones were dropped on Spark too.
        folded = spark / "tables" / "intermediate.db" / "int_visitor_totals_folded"
        assert sorted(p.name for p in folded.glob("as_of_date=*")) == [f"as_of_date={d}" for d in features[-2:]]
