"""The DuckDB warehouse: connections, every table the job owns, the dbt runner, and publishing the scores."""
