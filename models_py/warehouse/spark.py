"""The Spark engine (PROPENSITY_ENGINE=spark, the ``[spark]`` extra): what the job does differently when dbt builds
on Spark.

- The sources: the raw tables and the build plan go to Parquet folders under PROPENSITY_SPARK_DIR/sources, which
  dbt registers as Spark tables before every build. Events go once, one file per ingesting run, so a night writes
  only its own rows.
- The warehouse file keeps the job's own tables (run log, registry, gates, load log, score history) on both engines.
  Spark's tables (its Parquet folders) appear in it as views of the same names, so the gates, training's sample,
  drift and the report read them as they read DuckDB's.
- The job's own Spark session reads and writes Parquet by path, without the metastore: dbt's local Spark keeps its
  metastore in an embedded database that only one process may open.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow.parquet as pq

from models_py.config import Settings
from models_py.data.ingest import CATALOGUE_FILES
from models_py.errors import BadInputError, JobFailed
from models_py.warehouse.schema import BUILD_PLAN, BUILD_VISITOR_SPLITS, DERIVED_SCHEMAS, sql_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EVENTS = "raw.events"
# Every source dbt declares is registered on Spark, so each needs its file; the visitor splits stay empty there.
WHOLE_TABLES = ("raw.item_properties", "raw.category_tree", "raw.load_log", BUILD_PLAN, BUILD_VISITOR_SPLITS)
PARTITION_KEYS = ("as_of_date", "shop_day")  # every partitioned table of the project is partitioned by a date


def _copy(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> None:
    """A query's rows as one Parquet file, written beside it under a name Spark skips, then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name("." + target.name + ".partial")
    con.execute(f"copy ({query}) to {sql_path(partial)} (format parquet)")
    os.replace(partial, target)


def export_sources(con: duckdb.DuckDBPyConnection, cfg: Settings) -> None:
    """Bring the Parquet sources up to the warehouse: events of runs not exported yet (a loaded day is final, so a
    run's events are exactly those between its first and last event), files of unloaded runs removed, the small
    tables whole. Ends by checking that the Parquet events count as many rows as raw.events."""
    events = cfg.spark_sources_dir / EVENTS
    events.mkdir(parents=True, exist_ok=True)
    runs = {
        run_id: (first_ms, last_ms)
        for run_id, first_ms, last_ms in con.execute(
            "select run_id, min(first_event_ms), max(last_event_ms) from raw.load_log "
            "where kind = 'events' and rows_loaded > 0 group by run_id"
        ).fetchall()
    }
    exported = {p.name.removeprefix("run-").removesuffix(".parquet"): p for p in events.glob("run-*.parquet")}
    for run_id, path in exported.items():
        if run_id not in runs:  # taken out by `propensity unload`
            path.unlink()
    for run_id, (first_ms, last_ms) in runs.items():
        if run_id not in exported:
            _copy(con, f"select * from {EVENTS} where timestamp between {first_ms} and {last_ms}",
                  events / f"run-{run_id}.parquet")  # fmt: skip
    in_parquet = sum(pq.ParquetFile(p).metadata.num_rows for p in events.glob("run-*.parquet"))
    in_warehouse = con.execute(f"select count(*) from {EVENTS}").fetchone()[0]
    if in_parquet != in_warehouse:
        raise JobFailed(
            f"the Parquet copy of raw.events under {events} holds {in_parquet:,} rows, the warehouse {in_warehouse:,}: "
            "remove that folder and run again to export every event anew"
        )
    for table in WHOLE_TABLES:
        _write_whole(con, table, cfg.spark_sources_dir / table)


def _write_whole(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> None:
    """The table as one file named after its version: unchanged tables are not read or rewritten."""
    name = f"part-{_version(con, table)}.parquet"
    if (folder / name).is_file():
        return
    _copy(con, f"select * from {table}", folder / name)
    for old in folder.glob("part-*.parquet"):
        if old.name != name:
            old.unlink()


def _version(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """A catalogue table's version is its last loaded file's digest (from the load log, without reading the table,
    which may be large); the small job tables' is a digest of their rows."""
    files = [name for name, (target, _) in CATALOGUE_FILES.items() if target == table]
    if files:
        row = con.execute(
            "select sha256 from raw.load_log where kind = 'catalogue' and file_name = ? "
            "order by loaded_at desc limit 1",
            files,
        ).fetchone()
        return (row[0] if row else "empty")[:16]
    rows = con.execute(f"select * from {table} order by all").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def table_folder(cfg: Settings, table: str) -> Path:
    """Where Spark keeps a table of the project (``schema.name``): its managed tables live in <schema>.db/<name>."""
    schema, name = table.split(".")
    return cfg.spark_tables_dir / f"{schema}.db" / name


def show_spark_tables(con: duckdb.DuckDBPyConnection, cfg: Settings) -> None:
    """Every table dbt built on Spark as a view of the same name in the warehouse file, over its Parquet files (a
    partition's date comes from its folder's name). Tables without files yet get no view."""
    for schema in DERIVED_SCHEMAS:
        con.execute(f"create schema if not exists {schema}")
        views = {r[0] for r in con.execute(
            "select view_name from duckdb_views() where schema_name = ? and not internal", [schema]
        ).fetchall()}  # fmt: skip
        shown = set()
        for folder in sorted((cfg.spark_tables_dir / f"{schema}.db").glob("*")):
            source = _parquet_source(folder)
            if source:
                con.execute(f"create or replace view {schema}.{folder.name} as select * from {source}")
                shown.add(folder.name)
        for gone in views - shown:
            con.execute(f"drop view {schema}.{gone}")


def _parquet_source(folder: Path) -> str | None:
    keys = {p.name.split("=", 1)[0] for p in folder.glob("*=*") if p.is_dir()}
    if keys:
        if not any(folder.glob("*=*/*.parquet")):
            return None
        types = ", ".join(f"'{k}': date" for k in sorted(keys) if k in PARTITION_KEYS)
        files = sql_path(folder / "*=*" / "*.parquet")
        return f"read_parquet({files}, hive_partitioning = true, hive_types = {{{types}}})"
    if not any(folder.glob("*.parquet")):
        return None
    return f"read_parquet({sql_path(folder / '*.parquet')})"


def check_engine(con: duckdb.DuckDBPyConnection, cfg: Settings) -> None:
    """One warehouse file, one engine: the marts are tables on DuckDB and views of Spark's files on Spark. Mixing
    them would build tonight's features from another engine's state."""
    if cfg.engine == "spark":
        _check_installed()
    row = con.execute(
        "select table_type from information_schema.tables where table_schema = 'marts' "
        "and table_name = 'fct_visitor_features'"
    ).fetchone()
    if not row:
        return
    built_by = "spark" if row[0] == "VIEW" else "duckdb"
    if built_by != cfg.engine:
        raise BadInputError(
            f"PROPENSITY_ENGINE={cfg.engine}, but the warehouse {cfg.warehouse_path} was built by the {built_by} "
            f"engine: run with PROPENSITY_ENGINE={built_by}, or move this warehouse to {cfg.engine} with "
            f"`PROPENSITY_ENGINE={cfg.engine} propensity build --from-scratch` (it builds every date anew there)"
        )


def _check_installed() -> None:
    if not (importlib.util.find_spec("pyspark") and importlib.util.find_spec("dbt.adapters.spark")):
        raise BadInputError(
            "PROPENSITY_ENGINE=spark needs the [spark] extra: run `make setup-spark` (pip install -e '.[spark]')"
        )


def spark_conf(cfg: Settings) -> dict[str, str]:
    """The settings the job's own Spark session shares with dbt's (profiles.yml, output ``spark``)."""
    return {
        "spark.master": cfg.spark_master,
        "spark.driver.memory": cfg.spark_driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


@contextmanager
def spark_session(cfg: Settings) -> Iterator[SparkSession]:
    """A Spark session of the job's own (stopped on leaving), its Python workers running this interpreter."""
    _check_installed()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("propensity")
    for key, value in spark_conf(cfg).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()
