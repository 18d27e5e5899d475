"""The house rules, checked: small modules and functions, imports pointing down the rooms only, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A module may import from its own room and the rooms before it, never from a later one.
ROOMS = ("base", "data", "warehouse", "modeling", "world", "ops", "jobs")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("models_py", "jobs"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(p for p in parts if p != "__init__")] = path
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "jobs":
        return "jobs"
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else "base"


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules a file imports anywhere in it (a lazy import inside a function counts too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        out |= {n for n in names if n in known}
    return out


def test_imports_point_down_the_rooms_and_never_round_in_a_cycle() -> None:
    modules = _modules()
    graph = {m: _imports(p, set(modules)) - {m} for m, p in modules.items()}
    upward = [
        f"{m} ({_room(m)}) imports {d} ({_room(d)})"
        for m, deps in graph.items()
        for d in deps
        if ROOMS.index(_room(d)) > ROOMS.index(_room(m))
    ]
    assert not upward, upward

    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if d in modules and not (d.count(".") < m.count(".") and m.startswith(d + ".")):
                if state.get(d) == 1:
                    pytest.fail("import cycle: " + " -> ".join([*path, m, d]))
                if d not in state:
                    visit(d, [*path, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_no_module_or_function_is_too_long_to_read() -> None:
    long_modules, long_functions = [], []
    for name, path in _modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name}: {length} lines")
    assert not long_modules and not long_functions, long_modules + long_functions


def test_the_room_rules_see_a_violation(tmp_path: Path) -> None:
    """The checker itself: an upward import is named."""
    bad = tmp_path / "bad.py"
    bad.write_text("from models_py.ops import registry\n")
    assert _imports(bad, {"models_py.ops", "models_py.ops.registry"}) == {"models_py.ops", "models_py.ops.registry"}
    assert ROOMS.index(_room("models_py.ops.registry")) > ROOMS.index(_room("models_py.data.ingest"))
