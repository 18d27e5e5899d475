"""Run dbt as a subprocess, so it opens and closes the warehouse itself (no lock held across stages)."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import duckdb

from models_py.config import Settings
from models_py.errors import JobFailed, ResourceError, WarehouseBusyError
from models_py.shop_calendar import EPOCH, utc_now_naive
from models_py.warehouse import build_plan, spark
from models_py.warehouse.build_plan import BuildPlan
from models_py.warehouse.connection import events_that_fit, loaded_events, mart_rows_that_fit, memory_limit, session
from models_py.warehouse.schema import DERIVED_SCHEMAS, LAST_BUILD

PR_SET_PDEATHSIG = 1
SPARK_LOG_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (INFO|WARN) ")  # dbt-spark's local Spark talking


class DbtError(JobFailed):
    """dbt failed; the message carries the lines that say why."""


def project_vars(cfg: Settings) -> dict:
    """The shop's settings dbt needs. They are the same every night, so dbt parses the project once; which dates a
    build makes reaches the models through ml.build_plan instead (see build_plan.write)."""
    return {
        **cfg.calendar.dbt_vars(),
        "label_horizon_days": cfg.horizon_days,
        "feature_windows_days": list(cfg.feature_windows_days),
        "cutoff_anchor": cfg.cutoff_anchor.isoformat(),
        "cutoff_step_days": cfg.cutoff_step_days,
        "keep_nightly_features": cfg.keep_nightly_features,
    }


def _die_with_parent() -> None:
    """In the dbt child: the kernel kills it when the job dies, however the job dies (kill -9 included), so a dbt
    build never runs on after its job and holds the warehouse's lock."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgid(0, 0)


WORKER = Path(__file__).with_name("dbt_worker.py")
_spare: subprocess.Popen | None = None  # a dbt process that has imported dbt and waits for its command


def warm_up() -> None:
    """Start the next dbt call's process now, so that it imports dbt (1.4-2 s of one core) while the job does
    something else: ingest, or dbt's previous call. An unused one ends with the job (its input closes)."""
    global _spare
    if _spare is None or _spare.poll() is not None:
        # -P: the script's folder (this package, with its dbt.py) stays off the path, so `import dbt` is dbt.
        _spare = subprocess.Popen(
            [sys.executable, "-P", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent,
        )


def _worker() -> subprocess.Popen:
    global _spare
    warm_up()
    proc, _spare = _spare, None
    return proc


def run_dbt(
    cfg: Settings,
    args: list[str],
    progress: Callable[[str], None] | None = None,
    events: int = 0,
    extra_vars: dict | None = None,
    another_follows: bool = False,
) -> None:
    """One dbt call; ``events`` (those it reads) sizes an ``auto`` DuckDB memory limit. ``extra_vars`` make dbt
    parse the project again, so only rare calls (a first night's chunks of history) pass any. With
    ``another_follows``, the next call's process starts importing dbt while this one runs."""
    target = ["--target", "spark"] if cfg.engine == "spark" and "--target" not in args else []
    dbt_vars = json.dumps({**project_vars(cfg), **(extra_vars or {})})
    env = {
        **os.environ,
        "PROPENSITY_WAREHOUSE": str(cfg.warehouse_path),
        "PROPENSITY_SPARK_DIR": str(cfg.spark_dir),
        "PROPENSITY_PARQUET_DIR": str(cfg.spark_sources_dir),
        "PROPENSITY_SPARK_MASTER": cfg.spark_master,
        "PROPENSITY_SPARK_DRIVER_MEMORY": cfg.spark_driver_memory,
        "PROPENSITY_DUCKDB_MEMORY_LIMIT": memory_limit(cfg.duckdb_memory_limit, events),
        "PROPENSITY_DUCKDB_DISABLED_COMPRESSION": cfg.duckdb_disabled_compression,
        "DBT_PROFILES_DIR": str(cfg.profiles_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    proc = _worker()
    assert proc.stdin is not None and proc.stdout is not None
    request = {"args": [*args, *target, "--vars", dbt_vars], "env": env, "cwd": str(cfg.dbt_project_dir)}
    try:
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the process ended before reading (it could not import dbt): its output says why
    if another_follows:
        warm_up()
    lines: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        if progress and any(k in line for k in (" OK ", "PASS", "FAIL", "ERROR", "WARN", "Done.")) \
                and not SPARK_LOG_LINE.match(line):  # fmt: skip
            progress("dbt | " + line.split("  ", 1)[-1].strip())
    if proc.wait() != 0:
        raise failure(cfg, args, lines, events)


def visitor_cutoffs_per_pass(cfg: Settings, events: int) -> int:
    """Visitors x cut-offs one build pass may make: PROPENSITY_MAX_VISITOR_CUTOFFS_PER_BUILD, or as many as dbt's
    memory limit holds at the feature mart's 400 bytes a row (scale 1's 1.4M visitors: three cut-offs a pass in
    2 GiB; scale 10 and 100: one)."""
    return cfg.max_visitor_cutoffs_per_build or mart_rows_that_fit(cfg.duckdb_memory_limit, events)


def failure(cfg: Settings, args: list[str], lines: list[str], events: int = 0) -> JobFailed:
    """What a failed dbt call means for the operator: a busy warehouse (exit 3), a full disk, DuckDB out of its memory
    limit (with the two settings that help), or the lines where dbt says what broke. ``events``: those the call
    read, which size an ``auto`` memory limit."""
    limit = memory_limit(cfg.duckdb_memory_limit, events)
    problems = [ln for ln in lines if any(k in ln for k in ("Error", "FAIL", "ERROR", "Got ", "lock"))]
    if any("Could not set lock" in ln or "Conflicting lock" in ln for ln in lines):
        return WarehouseBusyError(
            f"dbt could not open the warehouse {cfg.warehouse_path}: another process holds it (a tool with it "
            "open, another job); nothing was published. Close it and run again"
        )
    if any("No space left on device" in ln for ln in lines):
        return ResourceError(
            f"the disk is full: dbt could not write to {cfg.warehouse_path.parent} (the warehouse, and DuckDB's spill "
            "beside it); free space there or move PROPENSITY_WAREHOUSE to a larger disk, and run again; nothing was "
            "published.\n" + "\n".join(problems[-3:])
        )
    if any("Out of Memory Error" in ln for ln in lines):
        return ResourceError(
            f"out of memory in dbt: DuckDB needed more than {limit} "
            f"(PROPENSITY_DUCKDB_MEMORY_LIMIT={cfg.duckdb_memory_limit}) and could not spill the rest to disk. Raise "
            "that limit, or lower PROPENSITY_MAX_VISITORS_PER_INSERT so the feature mart inserts fewer visitors at "
            "a time, or PROPENSITY_MAX_VISITOR_CUTOFFS_PER_BUILD "
            f"({visitor_cutoffs_per_pass(cfg, events):,}) so a first night builds fewer cut-offs per pass; nothing was "
            "published.\n" + "\n".join(problems[-5:])
        )
    return DbtError("dbt " + " ".join(args) + " failed:\n" + "\n".join((problems or lines)[-25:]))


def build(cfg: Settings, plan: BuildPlan, progress: Callable[[str], None] | None = None) -> None:
    """`dbt build` of the plan's dates: the models, then dbt's tests on what they built. dbt's unit tests check the
    SQL, not the night's data: they run with the test suite (`make test`), not every night. A large first night
    rolls its history up in chunks of days that fit DuckDB's memory limit, then builds its cut-offs in passes
    (PROPENSITY_MAX_VISITOR_CUTOFFS_PER_BUILD); a pass with more visitors than the limit joins at once inserts its
    features in visitor-id ranges (PROPENSITY_MAX_VISITORS_PER_INSERT)."""
    warm_up()  # dbt's first process imports dbt while the job plans the build
    in_events = None
    with session(cfg) as con:
        inputs = inputs_digest(con, cfg)
        con.execute(f"delete from {LAST_BUILD}")  # the derived tables are about to change
        events = loaded_events(con)
        chunks = build_plan.rollup_chunks(con, cfg, events_that_fit(cfg.duckdb_memory_limit, events))
        if len(plan.features) > 1 or build_plan.samples_visitors(plan):
            in_events = build_plan.visitors_in_events(con)
    visitors = in_events[0] if in_events else 0
    steps = build_plan.passes(plan, visitors, visitor_cutoffs_per_pass(cfg, events))
    calls_left = len(chunks) + len(steps)
    for until_day, chunk_events in chunks:
        if progress:
            progress(f"  rolling up the days before {EPOCH + timedelta(days=until_day)}: {chunk_events:,} events")
        calls_left -= 1
        run_dbt(cfg, ["run", "--select", *build_plan.ROLLUP_MODELS], progress, chunk_events,
                extra_vars={"rollup_until_day": until_day}, another_follows=calls_left > 0)  # fmt: skip
    if progress and build_plan.samples_visitors(plan) and visitors > cfg.max_cutoff_visitors:
        progress(
            f"  past cut-offs keep a uniform {cfg.max_cutoff_visitors / visitors:.0%} of the shop's ~{visitors:,} "
            f"visitors (PROPENSITY_MAX_CUTOFF_VISITORS={cfg.max_cutoff_visitors:,})"
        )
    for number, step in enumerate(steps, 1):
        if len(steps) > 1 and progress:
            progress(f"  pass {number} of {len(steps)}: {build_plan.describe(step)}")
        with session(cfg) as con:
            spark.check_engine(con, cfg)
            splits = []
            if cfg.engine == "duckdb":  # Spark spreads a build over its executors itself
                fit = cfg.max_visitors_per_insert or mart_rows_that_fit(cfg.duckdb_memory_limit, events)
                splits = build_plan.visitor_splits(con, cfg, step, fit, in_events)
                if progress and splits:
                    progress(f"  the feature mart inserts in {len(splits) + 1} visitor-id ranges of <= ~{fit:,} rows")
            build_plan.write(con, cfg, step, visitors, splits)
            if cfg.engine == "spark":
                spark.export_sources(con, cfg)
        calls_left -= 1
        run_dbt(cfg, ["build", "--exclude-resource-type", "unit_test"], progress, events,
                another_follows=calls_left > 0)  # fmt: skip
        if cfg.engine == "spark":
            with session(cfg) as con:
                spark.show_spark_tables(con, cfg)
    with session(cfg) as con:
        con.execute(f"insert into {LAST_BUILD} values (?, ?, ?)", [plan.scored, inputs, utc_now_naive()])


def inputs_digest(con: duckdb.DuckDBPyConnection, cfg: Settings) -> str:
    """A fingerprint of everything a build's result depends on besides its dates: the loaded files, the engine, the
    project's settings, its SQL and YAML, and the versions of dbt and the engines. Equal fingerprints, equal
    derived tables."""
    digest = hashlib.sha256()
    loads = con.execute(
        "select coalesce(string_agg(file_name || ' ' || sha256, ',' order by file_name, sha256), '') from raw.load_log"
    ).fetchone()[0]
    versions = {name: _version(name) for name in ("dbt-core", "dbt-duckdb", "duckdb", "dbt-spark", "pyspark")}
    digest.update(json.dumps([cfg.engine, project_vars(cfg), versions, loads], sort_keys=True).encode())
    project = cfg.dbt_project_dir
    sources = [
        project / "dbt_project.yml",
        *(p for d in ("models", "macros", "tests") for p in (project / d).rglob("*")),
    ]
    for path in sorted(p for p in sources if p.is_file()):
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def build_is_current(con: duckdb.DuckDBPyConnection, cfg: Settings, plan: BuildPlan) -> bool:
    """Whether tonight's plan is already built: the last build was tonight's and finished, and nothing it read has
    changed since (a rerun after a failure later in the night). Then the rerun skips the build: its result would be
    the same tables."""
    if plan.features != [plan.scored] or plan.labels:
        return False
    last = con.execute(f"select scored_as_of, inputs_digest from {LAST_BUILD}").fetchall()
    return last == [(plan.scored, inputs_digest(con, cfg))]


def drop_derived_on_spark(cfg: Settings) -> None:
    """The Spark engine's part of ``build_plan.drop_derived``: Spark's derived tables and their files."""
    if cfg.engine == "spark":
        run_dbt(
            cfg, ["run-operation", "drop_derived_schemas", "--args", json.dumps({"schemas": list(DERIVED_SCHEMAS)})]
        )
