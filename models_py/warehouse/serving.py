"""What marketing reads: ``serving.duckdb`` (PROPENSITY_SERVING), a small DuckDB file whose two tables are views over
Parquet files in the folder beside it (``serving/`` for ``serving.duckdb``):

- ``visitor_propensity_scores`` reads ``serving/visitor_propensity_scores.parquet``: tonight's scores, replaced each
  night by an atomic rename;
- ``visitor_propensity_score_history`` reads ``serving/nights/*.parquet``: the last PROPENSITY_SERVING_NIGHTS nights.

A view reads its file when a query runs, so a reader that keeps its connection open (a BI tool, a pool) sees each new
night on its next query, and a query never mixes two nights (a rename swaps the whole file; an open file stays
readable). The DuckDB file itself is written once and replaced only when its layout changes. The full score history
stays beside the warehouse (ml.visitor_propensity_score_history, one Parquet file a night): a served night is a
second name of its history file (a copy only across file systems), so publishing writes no scores.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from models_py import faults
from models_py.config import Settings
from models_py.errors import JobFailed
from models_py.warehouse.schema import score_history_file, sql_path

LAYOUT_VERSION = 1
SCORES, HISTORY = "visitor_propensity_scores", "visitor_propensity_score_history"


class PublishError(JobFailed):
    """The serving files could not be written (disk full, unwritable path)."""


@dataclass(frozen=True)
class ServingFiles:
    database: Path

    @property
    def folder(self) -> Path:
        return self.database.with_suffix("")

    @property
    def current(self) -> Path:
        return self.folder / f"{SCORES}.parquet"

    @property
    def nights(self) -> Path:
        return self.folder / "nights"

    def night(self, as_of: date) -> Path:
        return self.nights / f"scores_{as_of.isoformat()}.parquet"


def served(cfg: Settings) -> tuple[date, str] | None:
    """The as-of date and run of the scores marketing reads now, from the served file itself."""
    current = ServingFiles(cfg.serving_path).current
    if not current.is_file() or not cfg.serving_path.is_file():
        return None
    try:
        row = pq.ParquetFile(current).read_row_group(0, columns=["as_of_date", "run_id"]).slice(0, 1).to_pylist()[0]
    except (OSError, IndexError, ValueError):
        return None  # unreadable or empty: not a publication to keep
    return row["as_of_date"], str(row["run_id"])


def publish(cfg: Settings, as_of: date, serve_from: date, run_id: str) -> Path:
    """Add the night ``as_of`` (its score history file, under a second name), and serve ``serve_from`` (the newest
    scored day: a backfilled older day joins the history without replacing tonight's scores)."""
    files = ServingFiles(cfg.serving_path)
    try:
        files.nights.mkdir(parents=True, exist_ok=True)
        for stale in [*files.folder.glob(".*.tmp"), *files.nights.glob(".*.tmp"), *cfg.serving_path.parent.glob(
                f".{cfg.serving_path.name}.*.tmp")]:  # fmt: skip
            stale.unlink(missing_ok=True)  # left by a run that was killed while publishing
        _replace(score_history_file(cfg.score_history_dir, as_of), files.night(as_of), run_id)
        faults.point("publish:swap")
        if serve_from == as_of:
            _replace(files.night(as_of), files.current, run_id)
        _keep_newest_nights(files, cfg.serving_nights, keep=serve_from)
        ensure_database(files, run_id)
    except (OSError, duckdb.IOException) as exc:
        raise write_failure(f"the serving files {cfg.serving_path} ({files.folder})", exc) from exc
    return cfg.serving_path


def write_failure(what: str, exc: OSError | duckdb.Error) -> PublishError:
    """The error of a write that failed, saying whether the disk is full; nothing marketing reads has changed."""
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left" in str(exc)
    return PublishError(
        f"cannot write {what}: "
        + ("the disk is full" if full else str(getattr(exc, "strerror", None) or exc))
        + "; what marketing reads is untouched, free space or fix the path and rerun"
    )


def durable(path: Path) -> None:
    """On disk before it is renamed into place: a crash leaves the old file or the whole new one."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _replace(source: Path, target: Path, run_id: str) -> None:
    """Make ``target`` a second name of ``source`` in one atomic rename (a copy where links are not allowed)."""
    tmp = target.with_name(f".{target.name}.{run_id}.tmp")
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            durable(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _keep_newest_nights(files: ServingFiles, nights: int, keep: date) -> None:
    found = sorted(files.nights.glob("scores_*.parquet"))
    for old in found[:-nights]:
        if old != files.night(keep):
            old.unlink(missing_ok=True)


def ensure_database(files: ServingFiles, run_id: str) -> None:
    """The serving DuckDB file with its views, written (under a temporary name, then renamed) only when it is
    missing or was made for another layout or another folder."""
    if files.database.is_file():
        try:
            with duckdb.connect(str(files.database), read_only=True) as con:
                if con.execute("select version, folder from serving_layout").fetchone() == (
                    LAYOUT_VERSION,
                    str(files.folder),
                ):
                    return
        except duckdb.Error:
            pass  # an older serving file (a table, no layout): replace it
    tmp = files.database.with_name(f".{files.database.name}.{run_id}.tmp")
    try:
        with duckdb.connect(str(tmp)) as con:
            con.execute(f"create view {SCORES} as select * from read_parquet({sql_path(files.current)})")
            con.execute(f"create view {HISTORY} as select * from read_parquet({sql_path(files.nights / '*.parquet')})")
            con.execute("create table serving_layout as select ? as version, ? as folder",
                        [LAYOUT_VERSION, str(files.folder)])  # fmt: skip
        durable(tmp)
        os.replace(tmp, files.database)
    finally:
        tmp.unlink(missing_ok=True)
