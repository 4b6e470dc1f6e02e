"""The report's blocks as one self-contained HTML page, or as Markdown with SVG files."""

from __future__ import annotations

import html
from pathlib import Path

from hptune.report._document import Block, Code, Decided, Figure, Heading, Table, Text

__all__ = ["to_html", "to_markdown"]

# Neutral greys for text and tables, so that the plots are the only saturated colour on the
# page (the rendering check counts coloured pixels to see the plots).
_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
       margin: 2rem auto; max-width: 1200px; padding: 0 1.5rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.7rem; border-bottom: 2px solid #ccc; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .85rem; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .55rem; text-align: left;
         vertical-align: top; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }
.decision { background: #f4f4f4; border-left: 4px solid #888; padding: .6rem .9rem;
            margin: .8rem 0; }
figure { margin: 1rem 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: .85rem; color: #555; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: .8rem; overflow-x: auto;
      font-size: .8rem; }
nav a { margin-right: .8rem; }
"""


def to_html(blocks: list[Block]) -> str:
    """One page that renders offline: styles and SVG plots inline, no script, no fetch."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "hptune report")
    anchors = [b for b in blocks if isinstance(b, Heading) and b.level == 2]
    nav = " ".join(f'<a href="#{b.anchor}">{html.escape(b.text)}</a>' for b in anchors)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        parts.append(_html_block(block))
        if isinstance(block, Heading) and block.level == 1:
            parts.append(f"<nav>{nav}</nav>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_block(block: Block) -> str:
    e = html.escape
    if isinstance(block, Heading):
        return f'<h{block.level} id="{e(block.anchor)}">{e(block.text)}</h{block.level}>'
    if isinstance(block, Text):
        return f"<p>{e(block.text)}</p>"
    if isinstance(block, Decided):
        return f'<div class="decision"><strong>{e(block.summary)}.</strong> {e(block.reason)}</div>'
    if isinstance(block, Table):
        head = "".join(f"<th>{e(c)}</th>" for c in block.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Figure):
        return (
            f'<figure id="figure-{e(block.name)}">{block.svg}'
            f"<figcaption>{e(block.caption)}</figcaption></figure>"
        )
    return f"<pre><code>{e(block.text)}</code></pre>"


def to_markdown(blocks: list[Block], figures_dir: Path, link_prefix: str) -> str:
    """Markdown that links each plot as an SVG file written to ``figures_dir``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Text):
            parts.append(block.text)
        elif isinstance(block, Decided):
            parts.append(f"> **{block.summary}.** {block.reason}")
        elif isinstance(block, Table):
            lines = [
                "| " + " | ".join(_md_cell(c) for c in block.columns) + " |",
                "|" + " --- |" * len(block.columns),
            ]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            parts.append("\n".join(lines))
        elif isinstance(block, Figure):
            path = figures_dir / f"{block.name}.svg"
            path.write_text(block.svg, encoding="utf-8")
            parts.append(f"![{block.caption}]({link_prefix}{path.name})")
        elif isinstance(block, Code):
            parts.append(f"```yaml\n{block.text.rstrip()}\n```")
    return "\n\n".join(parts) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
