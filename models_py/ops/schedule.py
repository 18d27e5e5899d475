"""When the nightly job retrains: decided before the build, so it imports nothing of training's (XGBoost)."""

from __future__ import annotations

from datetime import date

import duckdb

from models_py.config import Settings


def retrain_due(con: duckdb.DuckDBPyConnection, as_of: date, cfg: Settings) -> bool:
    """No model yet, or the newest was trained at least PROPENSITY_RETRAIN_EVERY_DAYS before ``as_of``."""
    row = con.execute("select max(as_of_date) from ml.model_registry where status <> 'withdrawn'").fetchone()
    return row[0] is None or (as_of - row[0]).days >= cfg.retrain_every_days
