"""Every table the Python side owns in the warehouse (``raw.*`` and ``ml.*``), in one place, with its migration.

dbt owns ``staging``, ``intermediate`` and ``marts``. The tables here are declared column by column; ``ensure``
creates what is missing and adds columns a newer version declares to tables an older version created, so an
upgraded job runs on an existing warehouse without a manual step.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "raw.events": (
        ("timestamp", "bigint not null"),
        ("visitorid", "bigint not null"),
        ("event", "varchar not null"),
        ("itemid", "bigint not null"),
        ("transactionid", "bigint"),
    ),
    "raw.item_properties": (
        ("timestamp", "bigint"),
        ("itemid", "bigint"),
        ("property", "varchar"),
        ("value", "varchar"),
    ),
    "raw.category_tree": (("categoryid", "bigint"), ("parentid", "bigint")),
    "raw.load_log": (
        ("file_name", "varchar not null"),
        ("sha256", "varchar not null"),
        ("kind", "varchar not null"),
        ("rows_in_file", "bigint"),
        ("rows_loaded", "bigint"),
        ("duplicates_dropped", "bigint"),
        ("first_event_ms", "bigint"),
        ("last_event_ms", "bigint"),
        ("loaded_at", "timestamp"),
        ("run_id", "varchar"),
        # The file's size and modification time when it was loaded: unchanged, a night need not read it again.
        ("file_bytes", "bigint"),
        ("file_modified_ns", "bigint"),
    ),
    "ml.run_log": (
        ("run_id", "varchar primary key"),
        ("as_of_date", "date"),
        ("started_at", "timestamp"),
        ("finished_at", "timestamp"),
        ("status", "varchar"),
        ("error", "varchar"),
        ("stage_seconds_json", "varchar"),
        ("rows_ingested", "bigint"),
        ("visitors_scored", "bigint"),
        ("model_version", "varchar"),
    ),
    "ml.model_registry": (
        ("model_version", "varchar primary key"),
        ("trained_at", "timestamp"),
        ("as_of_date", "date"),
        ("training_from", "date"),
        ("training_to", "date"),
        ("validation_as_of_date", "date"),
        ("feature_list", "varchar"),
        ("feature_hash", "varchar"),
        ("artifact_path", "varchar"),
        ("artifact_sha256", "varchar"),
        ("metrics_json", "varchar"),
        ("status", "varchar"),
        ("status_changed_at", "timestamp"),
    ),
    "ml.model_metrics": (
        ("model_version", "varchar"),
        ("evaluated_on", "date"),
        ("population", "varchar"),
        ("metric", "varchar"),
        ("value", "double"),
    ),
    "ml.validation_results": (
        ("run_id", "varchar"),
        ("suite", "varchar"),
        ("expectation", "varchar"),
        ("kwargs_json", "varchar"),
        ("success", "boolean"),
        ("unexpected_count", "bigint"),
        ("sample_json", "varchar"),
        ("checked_at", "timestamp default current_timestamp"),
    ),
    "ml.feature_drift": (
        ("run_id", "varchar"),
        ("as_of_date", "date"),
        ("reference_as_of_date", "date"),
        ("model_version", "varchar"),
        ("feature", "varchar"),
        ("psi", "double"),
        ("status", "varchar"),
        ("measured_at", "timestamp default current_timestamp"),
    ),
    "ml.score_drift": (
        ("run_id", "varchar"),
        ("as_of_date", "date"),
        ("previous_as_of_date", "date"),
        ("psi", "double"),
        ("mean_propensity", "double"),
        ("previous_mean_propensity", "double"),
        ("status", "varchar"),
        ("measured_at", "timestamp default current_timestamp"),
    ),
    "ml.build_plan": (
        ("as_of_date", "date not null"),
        ("as_of_day", "integer not null"),
        ("cutoff_ms", "bigint not null"),
        ("builds_features", "boolean not null"),
        ("builds_labels", "boolean not null"),
        ("visitor_share", "double"),
    ),
    # Where the feature mart's insert starts a new visitor-id range (none: one insert); see build_plan.visitor_splits.
    "ml.build_visitor_splits": (("first_visitor_id", "bigint not null"),),
    "ml.last_build": (
        ("scored_as_of", "date"),
        ("inputs_digest", "varchar not null"),
        ("finished_at", "timestamp not null"),
    ),
    "ml.backtest_metrics": (
        ("run_id", "varchar"),
        ("model", "varchar"),
        ("as_of_date", "date"),
        ("metric", "varchar"),
        ("value", "double"),
    ),
}

# The score history is not a table: one Parquet file a scored night (scores_<as-of date>.parquet in the folder
# Settings.score_history_dir), read by the view SCORE_HISTORY. A night's 14M rows at scale 10 took ~20 s to insert
# into DuckDB (six text columns) and write ~5 s as Parquet; the serving file of the night is the same file.
SCORE_HISTORY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("visitor_id", "bigint not null"),
    ("as_of_date", "date not null"),
    ("propensity", "double not null"),
    ("decile", "tinyint not null"),
    ("segment", "varchar not null"),
    ("reason_1", "varchar"),
    ("reason_2", "varchar"),
    ("reason_3", "varchar"),
    ("model_version", "varchar not null"),
    ("run_id", "varchar not null"),
    ("scored_at", "timestamp not null"),
)
SCORE_HISTORY_EMPTY = "_columns.parquet"  # no rows: the view's glob always matches and its columns are typed

RUN_LOG = "ml.run_log"
MODEL_REGISTRY = "ml.model_registry"
MODEL_METRICS = "ml.model_metrics"
SCORE_HISTORY = "ml.visitor_propensity_score_history"
VALIDATION_RESULTS = "ml.validation_results"
FEATURE_DRIFT = "ml.feature_drift"
SCORE_DRIFT = "ml.score_drift"
BACKTEST_METRICS = "ml.backtest_metrics"
BUILD_PLAN = "ml.build_plan"
BUILD_VISITOR_SPLITS = "ml.build_visitor_splits"
LAST_BUILD = "ml.last_build"  # what the derived tables were last built from (see dbt.build_is_current)
DERIVED_SCHEMAS = ("intermediate", "marts")  # what dbt builds from the events; staging is views and the catalogue


def score_history_file(folder: Path, as_of: date) -> Path:
    return folder / f"scores_{as_of.isoformat()}.parquet"


def night_of_scores(folder: Path, as_of: date) -> str:
    """One scored night as a table expression: its own file, typed as the history view types it. The view finds a
    night by opening every night's file, a cost that grows with each night kept."""
    return f"(select {_typed_history_columns()} from read_parquet({sql_path(score_history_file(folder, as_of))}))"


def _typed_history_columns() -> str:
    return ", ".join(f"cast({c} as {t.replace('not null', '').strip()}) as {c}" for c, t in SCORE_HISTORY_COLUMNS)


def scored_days(folder: Path) -> list[date]:
    """The scored as-of dates in order, from the file names: the job's questions about which days are scored cost
    a directory listing, where the view would read a date from every row of every night."""
    return sorted(date.fromisoformat(p.stem.removeprefix("scores_")) for p in folder.glob("scores_*.parquet"))


def ensure(con: duckdb.DuckDBPyConnection, score_history_dir: Path) -> None:
    """Create missing schemas and tables, add declared columns that an existing table lacks, and point the score
    history's view at ``score_history_dir``."""
    existing: dict[str, set[str]] = {}
    for schema, table, column in con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema in ('raw', 'ml') and table_catalog = current_database()"
    ).fetchall():
        existing.setdefault(f"{schema}.{table}", set()).add(column)
    for name, columns in TABLES.items():
        have = existing.get(name)
        if have is None:
            con.execute(f"create schema if not exists {name.split('.')[0]}")
            body = ",\n    ".join(f"{c} {t}" for c, t in columns)
            con.execute(f"create table if not exists {name} (\n    {body}\n)")
            continue
        for column, declared in columns:
            if column not in have:
                # Constraints cannot be added to existing rows; the type (and a default, if any) can.
                kind = declared.replace("primary key", "").replace("not null", "").strip()
                con.execute(f"alter table {name} add column {column} {kind}")
    _ensure_score_history(con, score_history_dir)


def _ensure_score_history(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    """The view over the nights' files, (re)made when missing or pointing elsewhere (a copied or moved warehouse).
    A warehouse from before keeps its history as a table: each of its days becomes a file, then the table goes."""
    files = sql_path(folder / "*.parquet")
    schema_name, name = SCORE_HISTORY.split(".")
    found = con.execute(
        "select 'view', sql from duckdb_views() where schema_name = $1 and view_name = $2 "
        "and database_name = current_database() union all "
        "select 'table', null from duckdb_tables() where schema_name = $1 and table_name = $2 "
        "and database_name = current_database()",
        [schema_name, name],
    ).fetchone()
    if found and found[0] == "view" and files in found[1] and (folder / SCORE_HISTORY_EMPTY).is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    typed = _typed_history_columns()
    nulls = ", ".join(f"null as {c}" for c, _ in SCORE_HISTORY_COLUMNS)
    con.execute(f"copy (select {typed} from (select {nulls}) where false) to {sql_path(folder / SCORE_HISTORY_EMPTY)}")
    if found and found[0] == "table":
        columns = ", ".join(c for c, _ in SCORE_HISTORY_COLUMNS)
        for (day,) in con.execute(f"select distinct as_of_date from {SCORE_HISTORY}").fetchall():
            target = score_history_file(folder, day)
            tmp = target.with_name(f".{target.name}.tmp")
            con.execute(
                f"copy (select {columns} from {SCORE_HISTORY} where as_of_date = ? order by visitor_id) "
                f"to {sql_path(tmp)} (format parquet, compression zstd)",
                [day],
            )
            tmp.replace(target)
        con.execute(f"drop table {SCORE_HISTORY}")
    con.execute(f"create or replace view {SCORE_HISTORY} as select {typed} from read_parquet({files})")


def sql_path(path: Path) -> str:
    """A file path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"
