"""Running it unattended: model registry and promotion, gates, drift, the run log, alerts and the report."""
