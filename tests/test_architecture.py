"""The package's structure, pinned: no import cycle, modules of one job (under 400 lines), a
light ``import hptune``, and every stored attribute key spelled only in ``hptune.keys``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hptune"


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        modules[name] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Which package modules each module imports, at module level, inside a function or
    under ``TYPE_CHECKING`` (a type is a dependency too). Importing ``a.b.c`` also runs
    ``a.b``, so a module depends on the parent packages of what it imports, except its own
    parents."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                found = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in found:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                while target.startswith("hptune."):  # the module and its parent packages
                    if target != name and not name.startswith(target + "."):
                        targets.add(target)
                    target = target.rpartition(".")[0]
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_inside_the_package() -> None:
    assert cycles(import_graph(_modules())) == []


def test_the_cycle_check_sees_a_cycle_through_a_parent_package(tmp_path) -> None:
    package = tmp_path / "hptune"
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("from hptune.b import y\n")
    (package / "a" / "x.py").write_text("")
    # a function-level import of hptune.a.x runs hptune/a/__init__.py, which imports b
    (package / "b.py").write_text("def y():\n    from hptune.a.x import z\n")
    assert cycles(import_graph(_modules(package))) == [["hptune.a", "hptune.b"]]


def test_every_module_keeps_under_400_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in sizes.items() if n >= 400} == {}


def _long_functions(path: Path, limit: int = 60) -> dict[str, int]:
    """The functions of ``path`` over ``limit`` lines (def line to last line)."""
    long = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > limit:
                long[f"{path.name}:{node.lineno} {node.name}"] = lines
    return long


def test_every_function_of_the_package_keeps_under_60_lines() -> None:
    long = {k: n for path in _modules().values() for k, n in _long_functions(path).items()}
    assert long == {}


def test_the_length_check_sees_a_long_function(tmp_path) -> None:
    path = tmp_path / "m.py"
    path.write_text("def f():\n" + "    x = 1\n" * 60)
    assert _long_functions(path) == {"m.py:1 f": 61}


def test_no_line_of_the_package_is_kept_from_the_formatter() -> None:
    # ruff lays the code out; a module near the line cap is split by idea, not squeezed.
    skipped = [
        f"{name}:{number}"
        for name, path in _modules().items()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "fmt: skip" in line or "fmt: off" in line
    ]
    assert skipped == []


def _imports_inside_functions(path: Path) -> list[str]:
    """The imports of the package's own modules made inside a function of ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom):
                own = inner.level > 0 or (inner.module or "").split(".")[0] == "hptune"
            elif isinstance(inner, ast.Import):
                own = any(alias.name.split(".")[0] == "hptune" for alias in inner.names)
            else:
                continue
            if own:
                found.append(f"{path.name}:{inner.lineno}")
    return found


def test_the_package_imports_its_own_modules_at_the_top() -> None:
    # Layering keeps imports at the top; the few left inside a function say why beside them.
    inside = [i for path in _modules().values() for i in _imports_inside_functions(path)]
    assert len(inside) <= 10, inside


def test_the_import_check_sees_an_import_inside_a_function(tmp_path) -> None:
    path = tmp_path / "m.py"
    path.write_text("import os\n\ndef f():\n    from hptune import keys\n    import json\n")
    assert _imports_inside_functions(path) == ["m.py:4"]


def test_importing_hptune_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, hptune\n"
        "heavy = ('torch', 'transformers', 'optuna', 'pydantic', 'peft', 'accelerate',"
        " 'datasets')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_name_of_the_package_loads_on_first_use() -> None:
    code = "import sys, hptune\nhptune.load_config\nprint('pydantic' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


#: Calls that write or read a stored attribute by its key (the key is their first argument,
#: or the second for the storage's trial-id methods).
_KEYED_CALLS = {
    "set_user_attr": 0,
    "set_system_attr": 0,
    "set_trial_user_attr": 1,
    "set_trial_system_attr": 1,
    "set_study_user_attr": 1,
}
_ATTRIBUTE_MAPS = {"user_attrs", "system_attrs", "attrs"}


def _literal_keys(path: Path) -> list[str]:
    """Stored attribute keys written as string literals in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, owner = node.func.attr, node.func.value
            if method in _KEYED_CALLS and len(node.args) > _KEYED_CALLS[method]:
                key = node.args[_KEYED_CALLS[method]]
            elif method == "get" and node.args and _names_attribute_map(owner):
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and _names_attribute_map(node.value):
            key = node.slice
        elif (  # "key" in user_attrs
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Constant)
            and any(_names_attribute_map(c) for c in node.comparators)
        ):
            key = node.left
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.append(f"{path.name}:{node.lineno}: {key.value!r}")
    return found


def _names_attribute_map(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in _ATTRIBUTE_MAPS
    return isinstance(node, ast.Name) and node.id in _ATTRIBUTE_MAPS


def test_stored_keys_are_spelled_only_in_hptune_keys() -> None:
    literal = [k for path in _modules().values() for k in _literal_keys(path)]
    assert literal == []


@pytest.mark.parametrize(
    "source",
    [
        'trial.set_user_attr("status", "ok")',
        'storage.set_trial_system_attr(tid, "hptune.heartbeat", 1.0)',
        't.user_attrs.get("runs", [])',
        'study.user_attrs["hptune.decision"]',
        '"seed_values" in attrs',
    ],
)
def test_the_key_check_catches_a_literal_key(tmp_path, source: str) -> None:
    path = tmp_path / "m.py"
    path.write_text(source + "\n")
    assert len(_literal_keys(path)) == 1


ARCHITECTURE_PAGE = PACKAGE.parent / "docs" / "architecture.md"


def _page_layers() -> dict[str, int]:
    """Each module named in the page's layer table, with its layer."""
    import re

    layers = {}
    for line in ARCHITECTURE_PAGE.read_text().splitlines():
        row = re.match(r"\| (\d+) \| (.*?) \|", line)
        if row:
            for name in re.findall(r"`(hptune(?:\.\w+)?)`", row.group(2)):
                layers[name] = int(row.group(1))
    return layers


def _top(name: str) -> str:
    return ".".join(name.split(".")[:2])


def test_the_architecture_page_names_every_module_and_its_layers_hold() -> None:
    modules = _modules()
    layers = _page_layers()
    assert set(layers) == {_top(name) for name in modules}  # every module, none made up
    upward = sorted(
        f"{source} (layer {layers[_top(source)]}) imports {target} (layer {layers[_top(target)]})"
        for source, targets in import_graph(modules).items()
        for target in targets
        if _top(source) != _top(target) and layers[_top(target)] >= layers[_top(source)]
    )
    assert upward == []


def test_every_module_the_page_names_in_its_text_exists() -> None:
    import re

    text = ARCHITECTURE_PAGE.read_text()
    modules = set(_modules())
    named = set(re.findall(r"\b(hptune(?:\.[a-z_]+)+)", text))
    # a module, or a public name of one (hptune.phases.make_phase)
    missing = {n for n in named if n not in modules and n.rpartition(".")[0] not in modules}
    assert missing == set()


def _warning_categories(path: Path) -> list[tuple[int, str | None]]:
    """Each ``warnings.warn`` call in ``path``: its line and the category's name (None when
    it names none, which means a bare UserWarning)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "warn" or getattr(node.func.value, "id", None) != "warnings":
            continue
        given = node.args[1] if len(node.args) > 1 else None
        given = next((k.value for k in node.keywords if k.arg == "category"), given)
        found.append((node.lineno, given.id if isinstance(given, ast.Name) else None))
    return found


def test_every_warning_of_hptune_is_an_hptune_warning() -> None:
    import hptune.exceptions

    stray = [
        f"{name}:{line}: {category}"
        for name, path in _modules().items()
        for line, category in _warning_categories(path)
        if category is None
        or not issubclass(getattr(hptune.exceptions, category, type), hptune.HptuneWarning)
    ]
    assert stray == []


def test_the_warning_check_sees_a_bare_warning(tmp_path) -> None:
    path = tmp_path / "m.py"
    path.write_text('import warnings\nwarnings.warn("x", stacklevel=2)\n')
    assert _warning_categories(path) == [(2, None)]


def test_no_name_of_the_package_is_shadowed_by_a_submodule() -> None:
    # Importing hptune.X sets the package's attribute X to the module: a function called X
    # on the package would turn into a module once anything imported it (hptune.export did).
    import importlib
    import pkgutil

    import hptune

    submodules = {m.name for m in pkgutil.iter_modules(hptune.__path__)}
    assert set(hptune.__all__) & submodules == set()
    for name in ("make_plan", "write_report", "diagnose_trials", "export"):
        module = importlib.import_module(hptune._LAZY[name])
        importlib.import_module(module.__name__)
        assert callable(getattr(hptune, name)), name
    assert hptune.diagnose_trials.__module__ == "hptune.diagnose"
