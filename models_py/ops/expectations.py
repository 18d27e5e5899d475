"""Great Expectations suites (expectations/*.json) evaluated in SQL, on the rows where they live.

The suites keep Great Expectations' format and meaning; the job checks them with one SQL query per expectation in
DuckDB instead of pulling every row into a pandas frame (minutes at scale 10) and importing GE (seconds). The test
suite runs the same suites through Great Expectations itself (``run_with_gx``) on the same rows and requires the
same verdicts, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pandas as pd

from models_py.config import PROJECT_ROOT
from models_py.errors import JobFailed

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
SAMPLE = 5


@dataclass(frozen=True)
class Outcome:
    suite: str
    expectation: str
    kwargs: dict
    success: bool
    unexpected_count: int | None
    sample: list


def load_suite(name: str, params: dict[str, float | int] | None = None) -> dict:
    """A suite with its run-time parameters (``"${name}"``) filled in."""
    text = (EXPECTATIONS_DIR / f"{name}.json").read_text()
    for key, value in (params or {}).items():
        text = text.replace(f'"${{{key}}}"', json.dumps(value))
    if "${" in text:
        raise JobFailed(f"suite {name}: a run-time parameter was not given ({text[text.index('${') :][:40]})")
    return json.loads(text)


def _condition(kw: dict) -> str:
    """A suite's row condition (written as a pandas query, the one GE parses) as SQL."""
    return kw["row_condition"].replace("==", "=") if kw.get("row_condition") else "true"


def _values(check: Callable[[dict], str], show: Callable[[dict], str] = lambda kw: kw["column"]):
    """An expectation on each row: unexpected rows are those (meeting the row condition) where ``check`` fails.
    With a locator (kw["_locate"], an SQL expression such as file and line), each sample value says where it is.
    The count keeps the check in its WHERE, where DuckDB skips a stored table's row groups by their statistics; the
    sample and the total are read only when needed: an expectation that holds, with no `mostly`, costs one query,
    not three (scale 100's scores gate, 140.8M rows registered from Arrow: 16 s against 24 s)."""

    def evaluate(con, rows: str, kw: dict) -> tuple[bool, int | None, list]:
        where = f"({_condition(kw)}) and not coalesce({check(kw)}, false)"
        count = con.execute(f"select count(*) from {rows} where {where}").fetchone()[0]
        sample = []
        if count:
            shown = show(kw) if not kw.get("_locate") else f"{kw['_locate']} || ': ' || cast({show(kw)} as varchar)"
            sample = [r[0] for r in con.execute(f"select {shown} from {rows} where {where} limit {SAMPLE}").fetchall()]
        mostly = kw.get("mostly", 1.0)
        if mostly >= 1.0:
            return count == 0, count, sample
        total = con.execute(f"select count(*) from {rows} where {_condition(kw)}").fetchone()[0]
        return count <= (1 - mostly) * total, count, sample

    return evaluate


def _between(column: str, kw: dict) -> str:
    parts = [f"{column} >= {kw['min_value']}" if kw.get("min_value") is not None else "true"]
    parts.append(f"{column} <= {kw['max_value']}" if kw.get("max_value") is not None else "true")
    return " and ".join(parts)


def _observed(query: Callable[[dict], str], ok: Callable[[float, dict], bool]):
    """An expectation on the whole table: one observed value."""

    def evaluate(con, rows: str, kw: dict) -> tuple[bool, int | None, list]:
        value = con.execute(query(kw).format(rows=rows)).fetchone()[0]
        return ok(value, kw), None, [value]

    return evaluate


def _columns_match(con, rows: str, kw: dict) -> tuple[bool, int | None, list]:
    have = [d[0] for d in con.execute(f"select * from {rows} limit 0").description]
    wanted = set(kw["column_set"])
    return (set(have) == wanted if kw.get("exact_match", True) else wanted <= set(have)), None, [have]


def _repeated_values(con, rows: str, where: str, column: str) -> int:
    """How many rows share their value of ``column`` with another row, nulls counted as equal (as a group by does),
    in one pass: each value is compared with its neighbours in sorted order, which DuckDB does 2x faster than
    hashing every value (4x on 14M scores, already in visitor order)."""
    neighbours = (f"select {column} as k, lag({column}) over w as before, lead({column}) over w as after "
                  f"from {rows} where {where} window w as (order by {column})")  # fmt: skip
    repeated, nulls = con.execute(
        f"select count(*) filter (where k = before or k = after), count(*) filter (where k is null) from ({neighbours})"
    ).fetchone()
    return repeated + (nulls if nulls > 1 else 0)


def _unique(columns: list[str]):
    key = ", ".join(columns)

    def evaluate(con, rows: str, kw: dict) -> tuple[bool, int | None, list]:
        # Every row of a repeated combination is unexpected, as in Great Expectations; with a row condition, only
        # the rows meeting it are compared and counted.
        where = _condition(kw)
        duplicated = f"(select {key}, count(*) as n from {rows} where {where} group by {key} having count(*) > 1)"
        if len(columns) == 1:
            count = _repeated_values(con, rows, where, key)
        else:  # a compound key (a night's landing rows) is grouped: sorting rows of several columns costs more
            count = con.execute(f"select coalesce(sum(n), 0) from {duplicated}").fetchone()[0]
        if not count:
            return True, 0, []
        sample = [list(r[:-1]) for r in con.execute(f"select * from {duplicated} limit {SAMPLE}").fetchall()]
        mostly = kw.get("mostly", 1.0)
        if mostly >= 1.0:
            return False, count, sample
        total = con.execute(f"select count(*) from {rows} where {where}").fetchone()[0]
        return count <= (1 - mostly) * total, count, sample

    return evaluate


def _within(value: float | None, kw: dict) -> bool:
    return (
        value is not None
        and (kw.get("min_value") is None or value >= kw["min_value"])
        and (kw.get("max_value") is None or value <= kw["max_value"])
    )


EXPECTATIONS = {
    "expect_table_columns_to_match_set": _columns_match,
    "expect_column_values_to_not_be_null": _values(lambda kw: f"{kw['column']} is not null"),
    "expect_column_values_to_be_null": _values(lambda kw: f"{kw['column']} is null"),
    "expect_column_values_to_be_in_set": _values(
        lambda kw: f"{kw['column']} in ({', '.join(json.dumps(v).replace(chr(34), chr(39)) for v in kw['value_set'])})"
    ),
    "expect_column_values_to_be_between": _values(lambda kw: _between(kw["column"], kw)),
    "expect_column_pair_values_a_to_be_greater_than_b": _values(
        lambda kw: f"{kw['column_A']} {'>=' if kw.get('or_equal') else '>'} {kw['column_B']}",
        lambda kw: f"'{kw['column_A']} ' || {kw['column_A']} || ', {kw['column_B']} ' || {kw['column_B']}",
    ),
    "expect_column_values_to_be_unique": lambda con, rows, kw: _unique([kw["column"]])(con, rows, kw),
    "expect_compound_columns_to_be_unique": lambda con, rows, kw: _unique(kw["column_list"])(con, rows, kw),
    "expect_table_row_count_to_be_between": _observed(lambda kw: "select count(*) from {rows}", _within),
    "expect_table_row_count_to_equal": _observed(
        lambda kw: "select count(*) from {rows}", lambda v, kw: v == kw["value"]
    ),
    "expect_column_mean_to_be_between": _observed(lambda kw: f"select avg({kw['column']}) from {{rows}}", _within),
}


def run_suite(
    con: duckdb.DuckDBPyConnection,
    name: str,
    rows: str,
    params: dict[str, float | int] | None = None,
    locate: str | None = None,
) -> list[Outcome]:
    """Every expectation of a suite on ``rows`` (a table, a registered Arrow table, or a parenthesised query).
    ``locate``: an SQL expression naming where a row comes from, shown with each offending value."""
    out = []
    for e in load_suite(name, params)["expectations"]:
        kw = e["kwargs"]
        if e["type"] not in EXPECTATIONS:
            raise JobFailed(f"suite {name}: {e['type']} is not one the job can check in SQL")
        success, count, sample = EXPECTATIONS[e["type"]](con, rows, {**kw, "_locate": locate})
        out.append(Outcome(name, e["type"], kw, bool(success), count, sample))
    return out


def run_with_gx(name: str, frame: pd.DataFrame, params: dict[str, float | int] | None = None) -> list[Outcome]:
    """The same suite through Great Expectations itself, on a pandas frame: the reference the SQL is held to."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite

    spec = load_suite(name, params)
    batch = (
        gx.get_context(mode="ephemeral")
        .data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("rows")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(ExpectationSuite(name=spec["name"], expectations=spec["expectations"]))
    out = []
    for r in result.results:
        details = r.result or {}
        sample = details.get("partial_unexpected_list") or (
            [details["observed_value"]] if "observed_value" in details else []
        )
        kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
        out.append(
            Outcome(
                name, r.expectation_config.type, kwargs, bool(r.success), details.get("unexpected_count"), sample[:5]
            )
        )
    return out
