"""Saved results the report shows: backtests and ceilings as JSON under the reports folder."""

from __future__ import annotations

import json
from pathlib import Path


def save(reports_dir: Path, kind: str, name: str, result: dict) -> Path:
    out = reports_dir / kind / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return out


def latest(reports_dir: Path, kind: str) -> dict | None:
    """The newest saved result of a kind (``backtests`` or ``ceilings``), by file name."""
    found = sorted((reports_dir / kind).glob("*.json"))
    return json.loads(found[-1].read_text()) if found else None
