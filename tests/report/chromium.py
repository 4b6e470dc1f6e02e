"""Render a report in headless Chromium, capture it to PNG, and check what a reader sees.

The page is laid out once with a probe script that records where each heading, table and
figure lands (``--dump-dom`` prints the DOM after scripts ran), then captured at full height
(``--screenshot``) without the probe. Each table's box must hold text, and each figure's box
must hold plotted colour at a readable width: the report's text and tables are grey, so
saturated pixels come only from the plots.

Run by hand: ``python -m tests.report.chromium REPORT.html OUT.png``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

WIDTH = 1280
_PROBE = """<script>
(() => {
  const boxes = [];
  let section = "top";
  for (const el of document.querySelectorAll("h2, table, figure")) {
    if (el.tagName === "H2") section = el.id;
    const r = el.getBoundingClientRect();
    boxes.push({tag: el.tagName.toLowerCase(), id: el.id, section: section,
                x: r.left + window.scrollX, y: r.top + window.scrollY,
                w: r.width, h: r.height});
  }
  const out = document.createElement("pre");
  out.id = "hptune-layout";
  out.textContent = JSON.stringify({height: document.documentElement.scrollHeight, boxes});
  document.body.appendChild(out);
})();
</script>"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class Box:
    tag: str
    id: str
    section: str
    x: float
    y: float
    w: float
    h: float


@dataclass
class Rendering:
    png: Path
    height: int
    boxes: list[Box]
    problems: list[str] = field(default_factory=list)

    def in_section(self, section: str, tag: str) -> list[Box]:
        return [b for b in self.boxes if b.section == section and b.tag == tag]


def _chromium(binary: str, *args: str) -> str:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--disable-extensions", *args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def render(report: Path, png: Path, binary: str) -> Rendering:
    """Lay out and capture ``report``; check every table and figure."""
    from matplotlib.image import imread

    with tempfile.TemporaryDirectory() as scratch:
        probed = Path(scratch) / "probed.html"
        probed.write_text(report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"))
        dom = _chromium(binary, f"--window-size={WIDTH},1000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="hptune-layout">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError("the layout probe did not run in Chromium")
    layout = json.loads(html.unescape(found.group(1)))
    height = int(layout["height"])
    _chromium(binary, f"--window-size={WIDTH},{height}", f"--screenshot={png}",
              report.resolve().as_uri())  # fmt: skip
    pixels = imread(png)[..., :3]
    rendering = Rendering(png, pixels.shape[0], [Box(**b) for b in layout["boxes"]])
    for box in rendering.boxes:
        crop = pixels[int(box.y) : int(box.y + box.h), int(box.x) : int(box.x + box.w)]
        if crop.size == 0:
            rendering.problems.append(f"{box.section} {box.tag} {box.id}: empty box")
            continue
        dark = float((crop.max(axis=2) < 0.45).mean())
        coloured = int(((crop.max(axis=2) - crop.min(axis=2)) > 0.3).sum())
        if box.tag == "table" and dark < 0.01:
            rendering.problems.append(f"{box.section} table: no text drawn ({dark:.2%} dark)")
        if box.tag == "figure":
            if box.w < 600:
                rendering.problems.append(f"{box.id}: {box.w:.0f} px wide, too small to read")
            if coloured < 100 or dark < 0.002:
                rendering.problems.append(
                    f"{box.id}: nothing plotted ({coloured} coloured px, {dark:.2%} dark)"
                )
    return rendering


if __name__ == "__main__":
    binary = find_chromium()
    if binary is None:
        sys.exit("no Chromium found; install Debian's 'chromium' package")
    result = render(Path(sys.argv[1]), Path(sys.argv[2]), binary)
    print(f"{result.png}: {WIDTH} x {result.height} px, {len(result.boxes)} boxes")
    for problem in result.problems:
        print("problem:", problem)
    sys.exit(1 if result.problems else 0)
