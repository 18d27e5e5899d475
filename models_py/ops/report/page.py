"""The page the report is written into: sections of HTML with PNG charts beside index.html, and plain tables."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the job runs headless under cron
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class Page:
    folder: Path
    sections: list[str] = field(default_factory=list)

    def figure(self, name: str, fig: plt.Figure, caption: str) -> str:
        fig.tight_layout()
        fig.savefig(self.folder / f"{name}.png", dpi=110)
        plt.close(fig)
        return f'<figure><img src="{name}.png" alt="{html.escape(caption)}"><figcaption>{caption}</figcaption></figure>'

    def section(self, title: str, *parts: str) -> None:
        self.sections.append(f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>")


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
