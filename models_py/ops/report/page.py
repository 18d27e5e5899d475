"""The page the report is written into: sections of HTML with PNG charts beside index.html, and plain tables."""

from __future__ import annotations

import hashlib
import html
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the job runs headless under cron
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class Page:
    """A report folder. Charts whose inputs did not change since the last report (the backtest's, the model's) are
    copied from the previous rendering in `cache` instead of drawn again: drawing is most of a report's time."""

    folder: Path
    cache: Path | None = None
    sections: list[str] = field(default_factory=list)
    drawn: list[Path] = field(default_factory=list)

    def figure(self, name: str, caption: str, draw: Callable[[], plt.Figure], inputs: object = None) -> str:
        """The chart `draw` makes, as <figure>; with `inputs` (what the chart shows, JSON-able) it may come from
        the cache."""
        target = self.folder / f"{name}.png"
        cached = None
        if inputs is not None and self.cache is not None:
            key = json.dumps([name, caption, inputs, _code_version()], sort_keys=True, default=str)
            cached = self.cache / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.png"
            self.drawn.append(cached)
        try:
            if cached is None:
                raise FileNotFoundError
            shutil.copyfile(cached, target)
        except FileNotFoundError:  # not drawn yet (or pruned meanwhile by another report)
            fig = draw()
            fig.tight_layout()
            fig.savefig(target, dpi=110)
            plt.close(fig)
            if cached is not None:
                self.cache.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(target, cached)
        return f'<figure><img src="{name}.png" alt="{html.escape(caption)}"><figcaption>{caption}</figcaption></figure>'

    def prune_cache(self) -> None:
        """Keep only this report's cached charts: the cache never grows past one report's worth."""
        if self.cache is not None and self.cache.is_dir():
            for old in set(self.cache.glob("*.png")) - set(self.drawn):
                old.unlink(missing_ok=True)

    def section(self, title: str, *parts: str) -> None:
        self.sections.append(f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>")


@cache
def _code_version() -> str:
    """The report code and matplotlib: a change to either draws every chart again."""
    sources = sorted(Path(__file__).parent.glob("*.py"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources) + matplotlib.__version__.encode()).hexdigest()


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.4f}" if abs(v) < 100 else f"{v:,.0f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def mean_sd(body: dict, key: str) -> str:
    mean, sd = body["mean"].get(key), body["sd"].get(key)
    if mean is None:
        return "-"
    return f"{mean:.4f} ± {sd:.4f}"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .85em; margin: 1em 0; display: block; overflow-x: auto; max-width: 100%; }
td, th { border: 1px solid #ddd; padding: .3em .6em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: .5em; } img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; }
"""
