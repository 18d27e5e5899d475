"""Strict reading of events files: each kind of malformed file gets an error naming file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from models_py.data.events_file import EventsFileError, read_events, summarise

GOOD = (
    "timestamp,visitorid,event,itemid,transactionid\n"
    "1439694000000,257597,view,355908,\n"
    "1439694000100,257597,addtocart,355908,\n"
    "1439694000200,257597,transaction,355908,4000\n"
)


def _write(tmp_path: Path, text: str | bytes, name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_good_file_is_typed_and_summarised(tmp_path: Path) -> None:
    table = read_events(_write(tmp_path, GOOD + "1439694000100,257597,addtocart,355908,\n"))
    assert table.schema.field("timestamp").type == "int64"
    assert table["transactionid"].to_pylist() == [None, None, 4000, None]
    s = summarise(table)
    assert (s.rows, s.visitors, s.duplicate_rows) == (4, 1, 1)
    assert s.event_counts == {"view": 1, "addtocart": 2, "transaction": 1}


@pytest.mark.parametrize(
    ("body", "line", "column", "words"),
    [
        (GOOD + "1439694000300,257597,vi", 5, None, "expected 5 columns, found 3 (the line looks truncated)"),
        (GOOD + "1439694000300,257597,view,355908,,9\n", 5, None, "expected 5 columns, found 6"),
        (GOOD + "1439694000300,25x597,view,355908,\n", 5, "visitorid", "non-negative integer id"),
        (GOOD + "1439694000300,257597,view,item7,\n", 5, "itemid", "non-negative integer id"),
        (GOOD + "1439694000300,257597,click,355908,\n", 5, "event", "unknown event type"),
        (GOOD + "1439694000,257597,view,355908,\n", 5, "timestamp", "looks like seconds"),
        (GOOD + "4102444800000,257597,view,355908,\n", 5, "timestamp", "in the future"),
        (GOOD + "1439694000300,257597,view,355908,77\n", 5, "transactionid", "only allowed on 'transaction'"),
        (GOOD + "1439694000300,257597,transaction,355908,\n", 5, "transactionid", "needs an integer"),
        (GOOD + "\n1439694000300,257597,view,355908,\n", 5, None, "empty line"),
        ("", 1, None, "the file is empty"),
        ("timestamp,visitorid,event,itemid,transactionid\n", 2, None, "no events"),
        ("timestamp,visitor,event,itemid,transactionid\n1,2,view,3,\n", 1, None, "header must be exactly"),
        (b"\xef\xbb\xbf" + GOOD.encode(), 1, None, "byte-order mark"),
        (GOOD.replace("\n", "\r\n"), 1, None, "CRLF"),
        (GOOD + "1439694000300,257597,view,355908,\r\n", 5, None, "CRLF"),
    ],
    ids=[
        "truncated",
        "extra-column",
        "non-numeric-visitor",
        "non-numeric-item",
        "unknown-event",
        "seconds",
        "far-future",
        "txid-on-view",
        "transaction-without-id",
        "blank-line",
        "empty-file",
        "header-only",
        "wrong-header",
        "bom",
        "crlf",
        "crlf-late",
    ],
)
def test_malformed_files_are_named_precisely(tmp_path: Path, body, line, column, words) -> None:
    path = _write(tmp_path, body, "events_2015-08-16.csv")
    with pytest.raises(EventsFileError) as err:
        read_events(path)
    message = str(err.value)
    assert str(path) in message and words in message
    assert err.value.line == line
    assert err.value.column == column


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EventsFileError, match="no such file"):
        read_events(tmp_path / "nope.csv")


def test_the_earliest_accepted_date_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An order system's export may start before 2000: the refusal names the setting, which then lets it in."""
    from models_py.config import settings

    old = _write(tmp_path, GOOD.replace("1439694000000", "915148800000"))  # 1999-01-01
    with pytest.raises(EventsFileError, match=r"line 2.*before 2000-01-01 \(PROPENSITY_EARLIEST_EVENT_DATE"):
        read_events(old)
    monkeypatch.setenv("PROPENSITY_EARLIEST_EVENT_DATE", "1990-01-01")
    cfg = settings()
    assert cfg.earliest_event_ms == 631_152_000_000
    assert read_events(old, earliest_ms=cfg.earliest_event_ms).num_rows == 3
