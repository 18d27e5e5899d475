"""Every table the Python side owns in the warehouse (``raw.*`` and ``ml.*``), in one place, with its migration.

dbt owns ``staging``, ``intermediate`` and ``marts``. The tables here are declared column by column; ``ensure``
creates what is missing and adds columns a newer version declares to tables an older version created, so an
upgraded job runs on an existing warehouse without a manual step.
"""

from __future__ import annotations

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
    "ml.visitor_propensity_score_history": (
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
    "ml.backtest_metrics": (
        ("run_id", "varchar"),
        ("model", "varchar"),
        ("as_of_date", "date"),
        ("metric", "varchar"),
        ("value", "double"),
    ),
}

RUN_LOG = "ml.run_log"
MODEL_REGISTRY = "ml.model_registry"
MODEL_METRICS = "ml.model_metrics"
SCORE_HISTORY = "ml.visitor_propensity_score_history"
VALIDATION_RESULTS = "ml.validation_results"
FEATURE_DRIFT = "ml.feature_drift"
SCORE_DRIFT = "ml.score_drift"
BACKTEST_METRICS = "ml.backtest_metrics"
BUILD_PLAN = "ml.build_plan"
DERIVED_SCHEMAS = ("intermediate", "marts")  # what dbt builds from the events; staging is views and the catalogue


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing schemas and tables, and add declared columns that an existing table lacks."""
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
