"""Nightly purchase propensity: the Python half of the job (dbt owns the features and labels).

Rooms, each importing only from the ones before it: ``config``, ``errors``, ``shop_calendar`` -> ``data`` (event
files, ingest) -> ``warehouse`` (connections, schema, dbt, publish) -> ``modeling`` (datasets, training,
calibration, scoring, backtest) -> ``world`` (the simulated shop and its truth) -> ``ops`` (registry, gates, drift,
run log, report). ``jobs/`` holds the entry points. See docs/architecture.md.
"""
