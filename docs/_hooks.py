"""MkDocs hook: the configuration reference is generated from hptune's configuration model.

A page that holds ``<!-- configuration-reference -->`` gets, in its place, one table per
section: each key, its type, its default and the ``#:`` comment above it in
``hptune/config.py`` (so the reference cannot drift from the code).
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

MARKER = "<!-- configuration-reference -->"


def on_page_markdown(markdown: str, **_: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, configuration_reference())


def configuration_reference() -> str:
    from pydantic import BaseModel

    from hptune import config

    comments = _field_comments(inspect.getsource(config))
    sections = []
    seen: set[str] = set()

    def describe(model: type[BaseModel], prefix: str) -> None:
        if model.__name__ in seen:
            return
        seen.add(model.__name__)
        rows, nested = [], []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((annotation, f"{prefix}{name}."))
                continue
            default = "required" if field.is_required() else f"`{field.get_default()!r}`"
            kind = _type_name(annotation)
            comment = comments.get((model.__name__, name), "")
            rows.append(f"| `{prefix}{name}` | {kind} | {default} | {comment} |")
        doc = inspect.getdoc(model) or ""
        title = prefix.rstrip(".") or "top level"
        table = "| key | type | default | meaning |\n|---|---|---|---|\n" + "\n".join(rows)
        sections.append(f"### `{title}`\n\n{doc.splitlines()[0] if doc else ''}\n\n{table}\n")
        for child, child_prefix in nested:
            describe(child, child_prefix)

    describe(config.TuneConfig, "")
    return "\n".join(sections)


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
