"""The event log's file format (Retail Rocket's events.csv), read strictly: a bad file is named, never half-loaded."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from models_py.errors import BadInputError

EVENT_COLUMNS = ("timestamp", "visitorid", "event", "itemid", "transactionid")
EVENT_TYPES = ("view", "addtocart", "transaction")
HEADER = ",".join(EVENT_COLUMNS)

# The published Kaggle file, so a user can tell they have the genuine one.
KAGGLE_EVENTS_SIZE = 94_237_913
KAGGLE_EVENTS_SHA256 = "3745aa83238b1e6d44d8fda209807899f420084398f94ddf745f3cbcfecbf9e7"

EARLIEST_MS = 946_684_800_000  # 2000-01-01, PROPENSITY_EARLIEST_EVENT_DATE's default
SECONDS_NOT_MS_BELOW = 100_000_000_000  # 1973 in ms, but 5138 AD in seconds
FUTURE_SLACK_MS = 86_400_000

EVENTS_SCHEMA = pa.schema(
    [
        ("timestamp", pa.int64()),
        ("visitorid", pa.int64()),
        ("event", pa.string()),
        ("itemid", pa.int64()),
        ("transactionid", pa.int64()),
    ]
)


class EventsFileError(BadInputError):
    """A landing file that does not follow the schema; says which file, line and column."""

    def __init__(self, path: Path | str, problem: str, line: int | None = None, column: str | None = None):
        self.path, self.problem, self.line, self.column = str(path), problem, line, column
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class EventsSummary:
    rows: int
    visitors: int
    items: int
    event_counts: dict[str, int]
    first_ms: int
    last_ms: int
    duplicate_rows: int


def _check_bytes(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        raise EventsFileError(path, "the file is empty (expected the header line: " + HEADER + ")", line=1)
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        refuse_binary(path, head)
        if head[:3] == b"\xef\xbb\xbf":
            raise EventsFileError(
                path, "the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM", line=1
            )
        fh.seek(0)
        line_no, chunk_size = 1, 1 << 24
        while chunk := fh.read(chunk_size):
            cr = chunk.find(b"\r")
            if cr >= 0:
                line_no += chunk.count(b"\n", 0, cr)
                raise EventsFileError(
                    path,
                    "Windows (CRLF) line ending: convert the file to Unix line endings (LF), e.g. with dos2unix",
                    line=line_no,
                )
            line_no += chunk.count(b"\n")


COMPRESSED = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"(\xb5/\xfd": "zstd"}


def refuse_binary(path: Path, head: bytes) -> None:
    """A compressed or binary file is named as such (before any line-ending check would misdescribe it)."""
    for magic, kind in COMPRESSED.items():
        if head.startswith(magic):
            raise EventsFileError(path, f"the file is {kind}-compressed: uncompress it and land the .csv", line=1)
    if b"\x00" in head:
        raise EventsFileError(path, "the file is binary (it holds NUL bytes), not a CSV text file", line=1)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            line = head.count(b"\n", 0, exc.start) + 1
            raise EventsFileError(path, "the file is not UTF-8 text (binary or another encoding)", line=line) from None


def _first_bad(mask: pa.ChunkedArray | pa.Array) -> int | None:
    mask = pc.fill_null(mask, True)
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def read_events(path: Path | str, now_ms: int | None = None, earliest_ms: int = EARLIEST_MS) -> pa.Table:
    """Parse one events file into typed Arrow columns, or raise EventsFileError naming the first problem."""
    path = Path(path)
    if not path.is_file():
        raise EventsFileError(path, "no such file")
    _check_bytes(path)
    with open(path, "rb") as fh:
        header = fh.readline().rstrip(b"\n").decode("utf-8", errors="replace")
    if header != HEADER:
        raise EventsFileError(path, f"header must be exactly '{HEADER}', found '{header}'", line=1)
    raw = _read_text_columns(path)
    _check_values(path, raw, int(time.time() * 1000) if now_ms is None else now_ms, earliest_ms)
    is_tx = pc.equal(raw["event"], "transaction")
    return pa.table(
        {
            "timestamp": pc.cast(raw["timestamp"], pa.int64()),
            "visitorid": pc.cast(raw["visitorid"], pa.int64()),
            "event": raw["event"],
            "itemid": pc.cast(raw["itemid"], pa.int64()),
            "transactionid": pc.cast(pc.if_else(is_tx, raw["transactionid"], pa.scalar(None, pa.string())), pa.int64()),
        },
        schema=EVENTS_SCHEMA,
    )


def _read_text_columns(path: Path) -> pa.Table:
    """Every column as text, one row per line; a line with the wrong number of fields is named by its number."""
    invalid: list[EventsFileError] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        # pyarrow swallows exceptions raised here: remember the row and let the reader stop.
        if row.actual_columns == 1 and not row.text:
            invalid.append(EventsFileError(path, "empty line", line=row.number))
        else:
            truncated = " (the line looks truncated)" if row.actual_columns < row.expected_columns else ""
            problem = f"expected {row.expected_columns} columns, found {row.actual_columns}{truncated}"
            invalid.append(EventsFileError(path, f"{problem}: '{row.text[:120]}'", line=row.number))
        return "error"

    try:
        raw = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in EVENT_COLUMNS}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        if invalid:
            raise invalid[0] from None
        raise EventsFileError(path, f"not a readable CSV file: {exc}") from exc
    if raw.num_rows == 0:
        raise EventsFileError(path, "the file has a header but no events", line=2)
    return raw


def _check_values(path: Path, raw: pa.Table, now_ms: int, earliest_ms: int) -> None:
    """The first row whose value breaks the schema, named by line and column; the checks run column-wise."""

    def check(bad_rows: pa.ChunkedArray | pa.Array, column: str | None, problem: str) -> None:
        bad = _first_bad(bad_rows)
        if bad is None:
            return
        if column is None:
            raise EventsFileError(path, problem, line=bad + 2)
        raise EventsFileError(path, f"{problem} (found '{raw[column][bad].as_py()}')", line=bad + 2, column=column)

    check(pc.and_(pc.equal(raw["timestamp"], ""), pc.equal(raw["event"], "")), None, "empty line")
    digits = r"^[0-9]{1,18}$"
    check(pc.invert(pc.match_substring_regex(raw["timestamp"], digits)), "timestamp",
          "expected milliseconds since 1970-01-01 as an integer")  # fmt: skip
    for column in ("visitorid", "itemid"):
        check(pc.invert(pc.match_substring_regex(raw[column], digits)), column, "expected a non-negative integer id")
    event, tx = raw["event"], raw["transactionid"]
    check(pc.invert(pc.is_in(event, pa.array(EVENT_TYPES))), "event",
          "unknown event type; expected one of " + ", ".join(EVENT_TYPES))  # fmt: skip
    is_tx = pc.equal(event, "transaction")
    check(pc.and_(pc.invert(is_tx), pc.not_equal(tx, "")), "transactionid",
          "transactionid is only allowed on 'transaction' events")  # fmt: skip
    check(pc.and_(is_tx, pc.invert(pc.match_substring_regex(tx, digits))), "transactionid",
          "a 'transaction' event needs an integer transactionid")  # fmt: skip
    ts = pc.cast(raw["timestamp"], pa.int64())
    check(pc.less(ts, SECONDS_NOT_MS_BELOW), "timestamp",
          "timestamp looks like seconds since 1970, expected milliseconds")  # fmt: skip
    earliest = datetime.fromtimestamp(earliest_ms / 1000, UTC).date()
    check(pc.less(ts, earliest_ms), "timestamp",
          f"timestamp is before {earliest} (PROPENSITY_EARLIEST_EVENT_DATE: set it for an older log)")  # fmt: skip
    check(pc.greater(ts, now_ms + FUTURE_SLACK_MS), "timestamp", "timestamp is in the future")


def summarise(table: pa.Table) -> EventsSummary:
    counts = {e: 0 for e in EVENT_TYPES}
    for row in pc.value_counts(table["event"]).to_pylist():
        counts[row["values"]] = row["counts"]
    distinct_rows = table.group_by(list(EVENT_COLUMNS)).aggregate([]).num_rows
    return EventsSummary(
        rows=table.num_rows,
        visitors=pc.count_distinct(table["visitorid"]).as_py(),
        items=pc.count_distinct(table["itemid"]).as_py(),
        event_counts=counts,
        first_ms=pc.min(table["timestamp"]).as_py(),
        last_ms=pc.max(table["timestamp"]).as_py(),
        duplicate_rows=table.num_rows - distinct_rows,
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path) -> list[str]:
    """What `propensity verify-events` prints: validity, counts, time range, and whether it is the Kaggle file."""
    from datetime import UTC, datetime

    s = summarise(read_events(path))

    def day(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()

    size = path.stat().st_size
    lines = [
        f"{path}: valid ({HEADER})",
        f"  rows {s.rows:,}  visitors {s.visitors:,}  items {s.items:,}  duplicate rows {s.duplicate_rows:,}",
        "  events " + "  ".join(f"{k} {v:,} ({100 * v / s.rows:.1f}%)" for k, v in s.event_counts.items()),
        f"  time range {day(s.first_ms)} .. {day(s.last_ms)} (UTC ms {s.first_ms} .. {s.last_ms})",
    ]
    if size == KAGGLE_EVENTS_SIZE:
        digest = sha256_of(path)
        match = "matches" if digest == KAGGLE_EVENTS_SHA256 else "DIFFERS: " + digest
        lines.append(f"  Kaggle events.csv: size matches, sha256 {match}")
    else:
        lines.append(f"  not the published Kaggle file (size {size:,} bytes; the Kaggle file: {KAGGLE_EVENTS_SIZE:,})")
    return lines
