"""The landing folder and its protocol: which files are ready to load.

A file is loaded only once it is complete. Either write it under another name and rename it into place as
``events*.csv`` (a rename is atomic), or write it in place and then drop an empty ``<file name>.done`` beside it:
as soon as one ``.done`` marker is in the folder, only files with their marker are loaded. Either way a file must end
with a newline; one that does not was cut off (or is still being written) and stops the night, loading nothing.
Files that look like event files but are misnamed (``Events_...``, ``.CSV``, ``.csv.gz``) stop it too, so that a
day is never silently skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from models_py.data.events_file import refuse_binary
from models_py.errors import BadInputError

NEAR_MISS = re.compile(r"events.*\.(csv|tsv|txt)(\.(gz|zip|bz2|xz))?$|events.*\.(gz|zip)$", re.IGNORECASE)


class IngestError(BadInputError):
    """A landing file that cannot be loaded; nothing of the run's files was loaded."""


@dataclass
class Landing:
    ready: list[Path] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)  # no .done marker yet (marker mode)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return True  # an empty file is refused by the reader, with its own message
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def scan(landing: Path) -> Landing:
    """The event files of the landing folder, oldest day first (a real events.csv sorts with them)."""
    if not landing.is_dir():
        raise BadInputError(
            f"the landing folder {landing} does not exist: set PROPENSITY_DATA_DIR to the folder that holds "
            "landing/ (or create it and land event files there)"
        )
    files = sorted(p for p in landing.glob("events*.csv") if p.is_file())
    misnamed = sorted(p.name for p in landing.iterdir() if NEAR_MISS.search(p.name) and p not in files)
    if misnamed:
        raise IngestError(
            f"{landing}: {', '.join(misnamed)} look like event files but are not named events*.csv (lower case, "
            "uncompressed): rename or uncompress them, or move them out of the landing folder"
        )
    root = landing.resolve()
    for p in files:
        # Only files that really live in the landing folder are picked up; anything else must be named explicitly.
        if not p.resolve().is_relative_to(root):
            raise IngestError(f"{p} points outside the landing folder ({p.resolve()}): name it explicitly to load it")
    out = Landing()
    marker_mode = any(landing.glob("*.done"))
    for p in files:
        if marker_mode and not p.with_name(p.name + ".done").exists():
            out.waiting.append(p)
        else:
            out.ready.append(p)
    return out


def ready_files(landing: Path, say=print) -> list[Path]:
    """The files to load tonight; files still waiting for their ``.done`` marker are named and left for later."""
    found = scan(landing)
    if found.waiting:
        say(f"  waiting for a .done marker (not loaded tonight): {', '.join(p.name for p in found.waiting)}")
    return found.ready


def check_complete(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as fh:
            refuse_binary(path, fh.read(1 << 16))  # a compressed file is named as such, not as "cut off"
    if path.is_file() and not _ends_with_newline(path):
        raise IngestError(
            f"{path}: the last line does not end with a newline, so the file was cut off or is still being "
            "written; nothing was loaded. Land complete files only: write under another name and rename into "
            "place, or add a .done marker when the file is complete (README, Landing files)"
        )
