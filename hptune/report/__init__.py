"""The run's report: each phase's decision, table and plots, diagnostics, the exported
configuration and the environment, as one self-contained HTML page and as Markdown.

Everything is read from the storage, so a report can be made while a run goes on (the phases
so far) or later on any machine that reaches the storage.
"""

from __future__ import annotations

import os
from pathlib import Path

from hptune.config import TuneConfig, load_config
from hptune.exceptions import ConfigError
from hptune.report._collect import PhaseEvidence, ReportData, collect
from hptune.report._document import build_blocks
from hptune.report._render import to_html, to_markdown

__all__ = ["PhaseEvidence", "ReportData", "collect", "write_report"]

_HTML = (".html", ".htm")


def write_report(
    config: TuneConfig | str | os.PathLike[str], output: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Write the report and return the report files written.

    ``output`` ending in ``.html`` gives the HTML page alone; ending in ``.md``, the Markdown
    with its plots as SVG files in ``<stem>-figures/`` beside it. Without ``output``, both go
    to the run's output directory as ``<name>-report.html`` and ``<name>-report.md``.

    Args:
        config: The configuration, or the path of its YAML file.
        output: The report file; by default both formats in the run's output directory.

    Returns:
        The files written (not the figures).

    Raises:
        NoStorageYet: No storage yet: nothing has run.
        ConfigError: an output that is neither ``.html`` nor ``.md``, or a run not started.
    """
    if not isinstance(config, TuneConfig):
        config = load_config(config, check_paths=False)
    if output is not None and Path(output).suffix.lower() not in (*_HTML, ".md"):
        raise ConfigError(
            f"cannot tell the report's format from {str(output)!r}; give a file name ending "
            "in .html (one self-contained page) or .md (Markdown with SVG plots beside it)"
        )
    blocks = build_blocks(collect(config))
    if output is None:
        stem = Path(config.output_dir).resolve() / f"{config.name}-report"
        targets = [stem.with_suffix(".html"), stem.with_suffix(".md")]
    else:
        targets = [Path(output)]
    written: list[Path] = []
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in _HTML:
            text = to_html(blocks)
        else:
            figures = path.with_name(f"{path.stem}-figures")
            text = to_markdown(blocks, figures, link_prefix=f"{figures.name}/")
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)  # a reader never sees half a report
        written.append(path)
    return written
