"""Load landing files into raw.events: each file once, duplicates dropped, all new files in one transaction."""

from __future__ import annotations

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
    gate: Callable[[list[tuple[Path, pa.Table]]], None] | None = None,
    max_gap_days: int = 14,
    earliest_ms: int = events_file.EARLIEST_MS,
) -> IngestResult:
    """Validate every new file first (complete, parser, dates, then ``gate``), then load them all in one
    transaction."""
    result = IngestResult()
    for path in files:
        check_complete(path)
    pending = _new_files(con, files, result)
    parsed = [(path, digest, events_file.read_events(path, earliest_ms=earliest_ms)) for path, digest in pending]
    refuse_loaded_days(con, parsed, calendar)
    refuse_gaps(con, parsed, calendar, max_gap_days)
    if gate and parsed:
        gate([(path, table) for path, _, table in parsed])
    catalogue = _changed_catalogue(con, landing) if landing else []
    if not parsed and not catalogue:
        return result
    loaded_at = utc_now_naive()
    with transaction(con):
        if parsed:
            _load_events(con, parsed, run_id, loaded_at, result)
        for path, digest, target, table in catalogue:
            con.register("incoming_catalogue", table)
            con.execute(f"delete from {target}")
            con.execute(f"insert into {target} select * from incoming_catalogue")
            con.unregister("incoming_catalogue")
            con.execute(
                "insert into raw.load_log values (?, ?, 'catalogue', ?, ?, 0, null, null, ?, ?)",
                [path.name, digest, table.num_rows, table.num_rows, loaded_at, run_id],
            )
            result.files_loaded.append(path.name)
        faults.point("ingest:commit")
    return result


def _new_files(con: duckdb.DuckDBPyConnection, files: list[Path], result: IngestResult) -> list[tuple[Path, str]]:
    """Files not loaded before (by name and by content), with their sha256; the rest are counted as skipped."""
    known = dict(con.execute("select file_name, sha256 from raw.load_log where kind = 'events'").fetchall())
    known_digests = set(known.values())
    pending: list[tuple[Path, str]] = []
    for path in files:
        digest = events_file.sha256_of(path)
        if path.name in known:
            if known[path.name] != digest:
                raise IngestError(
                    f"{path}: a file of this name was already loaded with different content "
                    f"(sha256 {known[path.name][:12]}..., now {digest[:12]}...); refusing to mix them. "
                    "To replace a loaded file, take it out first with `propensity unload FILE`."
                )
            result.files_skipped.append(path.name)
        elif digest in known_digests or digest in {d for _, d in pending}:
            result.files_skipped.append(path.name)  # the same bytes under another name: nothing new
        else:
            pending.append((path, digest))
    return pending


def refuse_loaded_days(con: duckdb.DuckDBPyConnection, parsed: list[tuple[Path, str, pa.Table]], calendar) -> None:
    """A loaded shop day is final: the daily rollups have folded it in. An event dated on or before the last loaded
    day is refused, naming its file and line; a corrected day goes through `propensity unload` first."""
    last_ms = con.execute("select max(timestamp) from raw.events").fetchone()[0]
    if last_ms is None:
        return
    last_day = calendar.shop_day(last_ms)
    open_from = calendar.day_start_ms(last_day) + DAY_MS
    for path, _, table in parsed:
        early = np.flatnonzero(table["timestamp"].to_numpy() < open_from)
        if early.size:
            when = calendar.shop_day(int(table["timestamp"][int(early[0])].as_py()))
            raise IngestError(
                f"{path}, line {int(early[0]) + 2}: an event of shop day {when}, but the warehouse already holds every "
                f"day up to {last_day} and a loaded day is final ({early.size:,} such rows). Land only new days; to "
                "correct a loaded day, take its file out with `propensity unload FILE` and land the corrected one"
            )


def refuse_gaps(
    con: duckdb.DuckDBPyConnection, parsed: list[tuple[Path, str, pa.Table]], calendar, max_gap_days: int
) -> None:
    """Shop days arrive in order, so a day more than PROPENSITY_MAX_GAP_DAYS after the one before it is a wrong
    date (a test row, a clock error), whatever the file is called; loaded, it would move the as-of date there and
    block every later night."""
    last_ms = con.execute("select max(timestamp) from raw.events").fetchone()[0]
    rows = [(int(ms), path, line) for path, _, t in parsed
            for line, ms in _day_starts(t["timestamp"].to_numpy(), calendar)]  # fmt: skip
    rows.sort()
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


def _day_starts(ts: np.ndarray, calendar) -> list[tuple[int, int]]:
    """(line number, day start ms) of the first row of each distinct shop day in a file."""
    starts = calendar.day_start_ms_array(ts)
    days, first = np.unique(starts, return_index=True)
    return [(int(i) + 2, int(d)) for d, i in zip(days, first, strict=True)]


def _load_events(con, parsed: list[tuple[Path, str, pa.Table]], run_id: str, loaded_at, result: IngestResult) -> None:
    """Insert the new files' events, dropping rows repeated across tonight's files (earlier days are final, so no
    row of tonight can repeat one already loaded)."""
    incoming = pa.concat_tables(
        [t.append_column("file_order", pa.array([i] * t.num_rows, pa.int32())) for i, (_, _, t) in enumerate(parsed)]
    )
    con.register("incoming_events", incoming)
    con.execute(
        """
        create temp table kept as
        with ranked as (
            select *, row_number() over (
                partition by timestamp, visitorid, event, itemid, transactionid order by file_order
            ) as copy_number
            from incoming_events
        )
        select ranked.* exclude (copy_number)
        from ranked
        where copy_number = 1
        order by timestamp
        """
    )
    con.execute("insert into raw.events select timestamp, visitorid, event, itemid, transactionid from kept")
    per_file = dict(con.execute("select file_order, count(*) from kept group by 1").fetchall())
    for i, (path, digest, table) in enumerate(parsed):
        loaded = per_file.get(i, 0)
        ts = table["timestamp"]
        con.execute(
            "insert into raw.load_log values (?, ?, 'events', ?, ?, ?, ?, ?, ?, ?)",
            [path.name, digest, table.num_rows, loaded, table.num_rows - loaded,
             pa.compute.min(ts).as_py(), pa.compute.max(ts).as_py(), loaded_at, run_id],
        )  # fmt: skip
        result.files_loaded.append(path.name)
        result.rows_in_files += table.num_rows
        result.rows_loaded += loaded
    result.duplicates_dropped = result.rows_in_files - result.rows_loaded
    con.execute("drop table kept")
    con.unregister("incoming_events")


def _changed_catalogue(con: duckdb.DuckDBPyConnection, landing: Path) -> list[tuple[Path, str, str, pa.Table]]:
    """Category tree and item properties whose content differs from the last load (they replace the old copy)."""
    out = []
    for name, (target, types) in CATALOGUE_FILES.items():
        path = landing / name
        if not path.is_file():
            continue
        digest = events_file.sha256_of(path)
        last = con.execute(
            "select sha256 from raw.load_log where file_name = ? and kind = 'catalogue' "
            "order by loaded_at desc limit 1",
            [name],
        ).fetchone()
        if last and last[0] == digest:
            continue
        try:
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
        except pa.ArrowInvalid as exc:
            raise IngestError(f"{path}: {exc}") from exc
        if table.column_names != list(types):
            raise IngestError(f"{path}: header must be {','.join(types)}, found {','.join(table.column_names)}")
        out.append((path, digest, target, table))
    return out
