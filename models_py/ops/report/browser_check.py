"""The report as a reader sees it: rendered by headless Chromium, every image decoded, nothing wider than the page.

A file check (every ``<img>`` names a PNG on disk) cannot see an image the browser fails to decode, a wrong path
that only a browser resolves, or a table that pushes the page sideways. Chromium can: a copy of the page with a
small script appended reports, after load, each image's decoded width and the page's width, in the dumped DOM.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from models_py.errors import BadInputError, JobFailed

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIEWPORT = (1280, 900)
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src"), width: i.naturalWidth}));
  const out = document.createElement("pre");
  out.id = "report-check";
  out.textContent = JSON.stringify({images, pageWidth: document.documentElement.scrollWidth,
                                    viewport: window.innerWidth});
  document.body.appendChild(out);
});
</script>"""


class ReportCheckFailed(JobFailed):
    """The rendered report is missing an image or overflows the page."""


@dataclass
class Rendering:
    images: list[dict]
    page_width: int
    viewport: int


def find_browser() -> str:
    """Chromium from PROPENSITY_CHROMIUM or the PATH; on Debian: ``apt-get install chromium``."""
    for name in filter(None, (os.environ.get("PROPENSITY_CHROMIUM"), *BROWSERS)):
        found = shutil.which(name)
        if found:
            return found
    raise BadInputError(
        "no headless Chromium found (tried " + ", ".join(BROWSERS) + "): install it (Debian: apt-get install "
        "chromium) or point PROPENSITY_CHROMIUM at the browser"
    )


def render(index: Path, browser: str, timeout_s: float = 120) -> Rendering:
    """Load the page in headless Chromium and read back what it decoded."""
    probe = index.with_name(".report-check.html")
    page = index.read_text()
    probe.write_text(page.replace("</body>", PROBE + "</body>") if "</body>" in page else page + PROBE)
    try:
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
             f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "--virtual-time-budget=10000", "--dump-dom",
             probe.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        ).stdout  # fmt: skip
    finally:
        probe.unlink(missing_ok=True)
    found = re.search(r'<pre id="report-check">(.*?)</pre>', dom, re.S)
    if not found:
        raise ReportCheckFailed(f"Chromium did not render {index} (no result from the page's check script)")
    result = json.loads(html.unescape(found.group(1)))
    return Rendering(result["images"], int(result["pageWidth"]), int(result["viewport"]))


def check(index: Path, browser: str | None = None) -> Rendering:
    """Fail, naming each one, on images the browser could not show and on a page wider than the window."""
    if not index.is_file():
        raise BadInputError(f"no report at {index}: run `propensity report` (or the nightly job) first")
    rendering = render(index, browser or find_browser())
    problems = [f"image {i['src']} did not load" for i in rendering.images if not i["width"]]
    if not rendering.images:
        problems.append("the page shows no image at all")
    if rendering.page_width > rendering.viewport:
        problems.append(f"the page is {rendering.page_width} px wide in a {rendering.viewport} px window")
    if problems:
        raise ReportCheckFailed(f"{index} in headless Chromium: " + "; ".join(problems))
    return rendering
