"""Load landing files into raw.events: each file once, duplicates dropped, all new files in one transaction.

Tonight's new files are staged one at a time into a DuckDB temp table (parsed and checked file by file), so the
job holds one file in memory, not a whole history: the gates and the refusals then run in SQL over the staged rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from models_py import faults
from models_py.data import events_file
from models_py.data.landing import IngestError, check_complete
from models_py.shop_calendar import DAY_MS, ShopCalendar, utc_now_naive
from models_py.transaction import transaction

CATALOGUE_FILES = {
    "category_tree.csv": ("raw.category_tree", {"categoryid": pa.int64(), "parentid": pa.int64()}),
    "item_properties.csv": (
        "raw.item_properties",
        {"timestamp": pa.int64(), "itemid": pa.int64(), "property": pa.string(), "value": pa.string()},
    ),
}
STAGED_ROWS = "incoming_events"  # temp: tonight's new rows with file_order and line_number
STAGED_FILES = "incoming_files"  # temp: one row per staged file (file_order, file_name)
STAGED = "incoming_staged"  # temp view: the rows with their file's name, what the gates check


@dataclass
class StagedFile:
    path: Path
    digest: str
    rows: int
    min_ms: int
    max_ms: int
    stat: tuple[int, int]  # file_stat when it was read


@dataclass
class IngestResult:
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    rows_in_files: int = 0
    rows_loaded: int = 0
    duplicates_dropped: int = 0


def ingest(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    run_id: str,
    calendar: ShopCalendar,
    landing: Path | None = None,
    gate: Callable[[str, list[Path]], None] | None = None,
    max_gap_days: int = 14,
    earliest_ms: int = events_file.EARLIEST_MS,
) -> IngestResult:
    """Validate every new file first (complete, parser, dates, then ``gate`` on the staged relation), then load
    them all in one transaction."""
    result = IngestResult()
    for path in files:
        check_complete(path)
    pending = _new_files(con, files, result)
    try:
        staged = _stage(con, pending, earliest_ms)
        refuse_loaded_days(con, calendar)
        days = refuse_gaps(con, calendar, max_gap_days)
        if gate and staged:
            gate(STAGED, [f.path for f in staged])
        catalogue = _changed_catalogue(con, landing) if landing else []
        if not staged and not catalogue:
            return result
        loaded_at = utc_now_naive()
        with transaction(con):
            if staged:
                _load_events(con, staged, days, run_id, loaded_at, result)
            for path, digest, stat, target, table in catalogue:
                con.register("incoming_catalogue", table)
                con.execute(f"delete from {target}")
                con.execute(f"insert into {target} select * from incoming_catalogue")
                con.unregister("incoming_catalogue")
                con.execute(
                    "insert into raw.load_log values (?, ?, 'catalogue', ?, ?, 0, null, null, ?, ?, ?, ?)",
                    [path.name, digest, table.num_rows, table.num_rows, loaded_at, run_id, *stat],
                )
                result.files_loaded.append(path.name)
            faults.point("ingest:commit")
    finally:
        _drop_staged(con)
    return result


def _stage(con: duckdb.DuckDBPyConnection, pending: list[tuple[Path, str]], earliest_ms: int) -> list[StagedFile]:
    """Parse each new file strictly and append its rows to the staging table, one file in memory at a time."""
    _drop_staged(con)
    # Narrow types: a large history's staged rows spill to disk uncompressed (the event names parse strictly).
    types = ", ".join(f"'{t}'" for t in events_file.EVENT_TYPES)
    con.execute(
        f"""create temp table {STAGED_ROWS} (
            timestamp bigint, visitorid bigint, event enum({types}), itemid bigint, transactionid bigint,
            file_order integer, line_number integer)"""
    )
    con.execute(f"create temp table {STAGED_FILES} (file_order integer, file_name varchar, file_path varchar)")
    con.execute(
        f"""create temp view {STAGED} as
            select r.*, f.file_name, f.file_path from {STAGED_ROWS} r join {STAGED_FILES} f using (file_order)"""
    )
    staged = []
    for order, (path, digest) in enumerate(pending):
        stat = file_stat(path)
        table = events_file.read_events(path, earliest_ms=earliest_ms)
        table = table.append_column("line_number", pa.array(np.arange(2, table.num_rows + 2, dtype=np.int32)))
        con.register("staging_file", table)
        con.execute(
            f"""insert into {STAGED_ROWS}
                select timestamp, visitorid, event, itemid, transactionid, {order}, line_number from staging_file"""
        )
        con.unregister("staging_file")
        con.execute(f"insert into {STAGED_FILES} values (?, ?, ?)", [order, path.name, str(path)])
        ts = table["timestamp"]
        staged.append(
            StagedFile(path, digest, table.num_rows, pa.compute.min(ts).as_py(), pa.compute.max(ts).as_py(), stat)
        )
    return staged


def _drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"drop view if exists {STAGED}")
    con.execute(f"drop table if exists {STAGED_ROWS}")
    con.execute(f"drop table if exists {STAGED_FILES}")


def file_stat(path: Path) -> tuple[int, int]:
    """Size and modification time (ns): what a loaded file must still show to be taken as unchanged unread."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _new_files(con: duckdb.DuckDBPyConnection, files: list[Path], result: IngestResult) -> list[tuple[Path, str]]:
    """Files not loaded before (by name and by content), with their sha256; the rest are counted as skipped. A
    loaded file that still has the size and modification time it was loaded with is not read again (rsync's quick
    check): hashing every landed file every night read the shop's whole history (9 GB at scale 100). Any other is
    hashed, and its stat recorded when it holds the loaded bytes (touched, or loaded before stats were kept)."""
    known = {
        name: (digest, stat)
        for name, digest, *stat in con.execute(
            "select file_name, sha256, file_bytes, file_modified_ns from raw.load_log where kind = 'events'"
        ).fetchall()
    }
    known_digests = {digest for digest, _ in known.values()}
    pending: list[tuple[Path, str]] = []
    restat: list[tuple[int, int, str]] = []
    for path in files:
        stat = file_stat(path)
        if path.name in known and tuple(known[path.name][1]) == stat:
            result.files_skipped.append(path.name)
            continue
        digest = events_file.sha256_of(path)
        if path.name in known:
            if known[path.name][0] != digest:
                raise IngestError(
                    f"{path}: a file of this name was already loaded with different content "
                    f"(sha256 {known[path.name][0][:12]}..., now {digest[:12]}...); refusing to mix them. "
                    "To replace a loaded file, take it out first with `propensity unload FILE`."
                )
            restat.append((*stat, path.name))
            result.files_skipped.append(path.name)
        elif digest in known_digests or digest in {d for _, d in pending}:
            result.files_skipped.append(path.name)  # the same bytes under another name: nothing new
        else:
            pending.append((path, digest))
    if restat:
        con.executemany(
            "update raw.load_log set file_bytes = ?, file_modified_ns = ? where kind = 'events' and file_name = ?",
            restat,
        )
    return pending


def refuse_loaded_days(con: duckdb.DuckDBPyConnection, calendar: ShopCalendar) -> None:
    """A loaded shop day is final: the daily rollups have folded it in. An event dated on or before the last loaded
    day is refused, naming its file and line; a corrected day goes through `propensity unload` first."""
    last_ms = con.execute("select max(timestamp) from raw.events").fetchone()[0]
    if last_ms is None:
        return
    last_day = calendar.shop_day(last_ms)
    open_from = calendar.day_start_ms(last_day) + DAY_MS
    early = con.execute(
        f"""select file_path, min(line_number), arg_min(timestamp, line_number), count(*)
            from {STAGED} where timestamp < ? group by file_order, file_path order by file_order limit 1""",
        [open_from],
    ).fetchone()
    if early:
        path, line, ms, count = early
        raise IngestError(
            f"{path}, line {line}: an event of shop day {calendar.shop_day(ms)}, but the warehouse "
            f"already holds every day up to {last_day} and a loaded day is final ({count:,} such rows). Land only new "
            "days; to correct a loaded day, take its file out with `propensity unload FILE` and land the corrected one"
        )


def refuse_gaps(con: duckdb.DuckDBPyConnection, calendar: ShopCalendar, max_gap_days: int) -> list[int]:
    """Shop days arrive in order, so a day more than PROPENSITY_MAX_GAP_DAYS after the one before it is a wrong
    date (a test row, a clock error), whatever the file is called; loaded, it would move the as-of date there and
    block every later night. Returns the staged days' starts (ms), in order, for the load."""
    last_ms = con.execute("select max(timestamp) from raw.events").fetchone()[0]
    # The first line of each distinct shop day in each file: a handful of rows, however large the files.
    rows = con.execute(
        f"""select {calendar.day_start_ms_sql("timestamp")} as day_start_ms, file_path,
                   min(line_number) as line_number
            from {STAGED} group by all order by day_start_ms, file_path, line_number"""
    ).fetchall()
    previous = None if last_ms is None else calendar.day_start_ms(calendar.shop_day(last_ms))
    for ms, path, line in rows:
        if previous is not None and ms - previous > max_gap_days * DAY_MS:
            raise IngestError(
                f"{path}, line {line}: an event of shop day {calendar.shop_day(ms)}, "
                f"{(ms - previous) // DAY_MS} days after the day before it ({calendar.shop_day(previous)}); days "
                f"arrive in order, so this date is wrong (gaps over PROPENSITY_MAX_GAP_DAYS={max_gap_days} are "
                "refused). Fix or remove the row; if the shop really was closed that long, raise the setting"
            )
        previous = ms
    return sorted({ms for ms, _, _ in rows})


def _load_events(con, staged: list[StagedFile], days: list[int], run_id: str, loaded_at, result: IngestResult) -> None:
    """Insert the staged events a shop day at a time (``days``: their starts, in order), dropping rows repeated
    across tonight's files (earlier days are final, so no row of tonight can repeat one already loaded); each kept
    row counts for the first file that holds it. A day at a time, a large history's first load needs neither the
    memory nor the disk for all of its rows twice."""
    loaded: Counter[int] = Counter()
    for start in days:
        con.execute(
            f"""create or replace temp table kept as
                select timestamp, visitorid, event, itemid, transactionid, min(file_order) as file_order
                from {STAGED_ROWS}
                where timestamp >= ? and timestamp < ?
                group by timestamp, visitorid, event, itemid, transactionid
                order by timestamp""",
            [start, start + DAY_MS],
        )
        con.execute("insert into raw.events select timestamp, visitorid, event, itemid, transactionid from kept")
        loaded.update(dict(con.execute("select file_order, count(*) from kept group by 1").fetchall()))
    con.execute("drop table if exists kept")
    for order, f in enumerate(staged):
        con.execute(
            "insert into raw.load_log values (?, ?, 'events', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [f.path.name, f.digest, f.rows, loaded[order], f.rows - loaded[order], f.min_ms, f.max_ms, loaded_at,
             run_id, *f.stat],
        )  # fmt: skip
        result.files_loaded.append(f.path.name)
        result.rows_in_files += f.rows
        result.rows_loaded += loaded[order]
    result.duplicates_dropped = result.rows_in_files - result.rows_loaded


def _changed_catalogue(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> list[tuple[Path, str, tuple[int, int], str, pa.Table]]:
    """Category tree and item properties whose content differs from the last load (they replace the old copy); a
    file with the size and modification time of its last load is not read (the item properties of a real shop run to
    a gigabyte)."""
    out = []
    for name, (target, types) in CATALOGUE_FILES.items():
        path = landing / name
        if not path.is_file():
            continue
        stat = file_stat(path)
        last = con.execute(
            "select sha256, file_bytes, file_modified_ns, loaded_at from raw.load_log "
            "where file_name = ? and kind = 'catalogue' order by loaded_at desc limit 1",
            [name],
        ).fetchone()
        if last and tuple(last[1:3]) == stat:
            continue
        digest = events_file.sha256_of(path)
        if last and last[0] == digest:
            con.execute(
                "update raw.load_log set file_bytes = ?, file_modified_ns = ? "
                "where file_name = ? and kind = 'catalogue' and loaded_at = ?",
                [*stat, name, last[3]],
            )
            continue
        try:
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
        except pa.ArrowInvalid as exc:
            raise IngestError(f"{path}: {exc}") from exc
        if table.column_names != list(types):
            raise IngestError(f"{path}: header must be {','.join(types)}, found {','.join(table.column_names)}")
        out.append((path, digest, stat, target, table))
    return out
