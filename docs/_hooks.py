"""MkDocs hooks: parts of pages generated from the code and from the demo's real run.

* ``<!-- configuration-reference -->`` becomes one table per section of the configuration
  model: each key, its type, its default and the ``#:`` comment above it in the module of
  ``hptune/config/`` that defines it (so the reference cannot drift from the code).
* ``<!-- demo-report: PHASE -->`` becomes that phase's section of the demo's report,
  ``docs/demo/demo-report.md``, written by ``hptune report examples/demo.yaml -o
  docs/demo/demo-report.md``: its decision, its table of trials and its plots.
"""

from __future__ import annotations

import ast
import inspect
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- configuration-reference -->"
DEMO_REPORT = Path(__file__).parent / "demo" / "demo-report.md"
_DEMO_MARKER = re.compile(r"<!-- demo-report: (\w+) -->")


def on_page_markdown(markdown: str, page: Any = None, **_: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, configuration_reference())
    if _DEMO_MARKER.search(markdown):
        page_dir = posixpath.dirname(page.file.src_uri) if page is not None else ""
        markdown = _DEMO_MARKER.sub(lambda m: demo_report_section(m.group(1), page_dir), markdown)
    return markdown


def demo_report_section(phase: str, page_dir: str = "") -> str:
    """The demo report's section for ``phase``, its figure links made relative to the page."""
    from hptune.phases import PHASES  # each phase's title: the report's own headings

    titles = {"summary": "Summary", **{name: phase.title for name, phase in PHASES.items()}}
    if phase not in titles:
        raise ValueError(f"no such phase in the report: {phase=}; one of {list(titles)}")
    sections = re.split(r"^## ", DEMO_REPORT.read_text(encoding="utf-8"), flags=re.M)
    found = [s for s in sections if s.startswith(titles[phase] + "\n")]
    if not found:
        raise ValueError(f"{DEMO_REPORT} has no section for {phase=}: regenerate it")
    body = found[0].split("\n", 1)[1].strip()
    figures = posixpath.relpath("demo", page_dir or ".")
    return re.sub(r"\]\((demo-report-figures/[^)]+)\)", rf"]({figures}/\1)", body)


def configuration_reference() -> str:
    from pydantic import BaseModel

    from hptune import config

    comments: dict[str, dict[tuple[str, str], str]] = {}  # per module of hptune.config
    sections = []
    seen: set[str] = set()

    def describe(model: type[BaseModel], prefix: str) -> None:
        if model.__name__ in seen:
            return
        seen.add(model.__name__)
        if model.__module__ not in comments:  # the #: comments are in the model's own module
            source = inspect.getsource(sys.modules[model.__module__])
            comments[model.__module__] = _field_comments(source)
        rows, nested = [], []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((annotation, f"{prefix}{name}."))
                continue
            section = _optional_section(annotation)
            if section is not None:  # e.g. budget: a section that is off unless given
                nested.append((section, f"{prefix}{name}."))
                comment = comments[model.__module__].get((model.__name__, name), "")
                rows.append(f"| `{prefix}{name}` | section or None | `None` (off) | {comment} "
                            f"(its keys: [`{prefix}{name}`](#{prefix}{name}).) |")  # fmt: skip
                continue
            default = (
                "required"
                if field.is_required()
                else f"`{field.get_default(call_default_factory=True)!r}`"
            )
            kind = _type_name(annotation)
            comment = comments[model.__module__].get((model.__name__, name), "")
            rows.append(f"| `{prefix}{name}` | {kind} | {default} | {comment} |")
        if model is config.PhasesConfig:  # each registered phase's section, by its name
            nested += [(m, f"{prefix}{n}.") for n, m in config.phase_section_models().items()]
        doc = inspect.getdoc(model) or ""
        title = prefix.rstrip(".") or "top level"
        table = "| key | type | default | meaning |\n|---|---|---|---|\n" + "\n".join(rows)
        sections.append(f"### `{title}`\n\n{doc.splitlines()[0] if doc else ''}\n\n{table}\n")
        for child, child_prefix in nested:
            describe(child, child_prefix)

    describe(config.TuneConfig, "")
    return "\n".join(sections)


def _optional_section(annotation: Any) -> Any:
    """The section model of ``Section | None``, else None."""
    import typing

    from pydantic import BaseModel

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def _type_name(annotation: Any) -> str:
    plain = isinstance(annotation, type) and not getattr(annotation, "__args__", None)
    text = annotation.__name__ if plain else repr(annotation)
    text = text.replace("typing.", "").replace("NoneType", "None").replace("|", "or")
    return f"`{text}`"


def _field_comments(source: str) -> dict[tuple[str, str], str]:
    """(class, field) -> the ``#:`` comment lines just above the field."""
    lines = source.splitlines()
    found: dict[tuple[str, str], str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                comment, row = [], item.lineno - 2
                while row >= 0 and lines[row].strip().startswith("#:"):
                    comment.insert(0, lines[row].strip().removeprefix("#:").strip())
                    row -= 1
                found[(node.name, item.target.id)] = " ".join(comment).replace("|", "\\|")
    return found
