"""The documentation site: it builds in strict mode (any warning fails), every code sample in
it runs, each phase page shows a figure made by the command it names, and the generated
configuration reference explains every key.

A code block may be preceded by a note that says how it runs:

* ``<!-- sample: slow -->``: run here, as a slow test;
* ``<!-- sample: tests/FILE.py::TEST -->``: run by that test (it must exist);
* no note: a ``python`` block is executed, a ``bash`` block run from the repository root, a
  ``yaml`` block validated as part of a configuration. ``text`` blocks are output.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from hptune import keys

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
BLOCK = re.compile(
    r"(?:<!-- sample: (?P<note>[^>]*?) -->\n)?^```(?P<lang>\w*)[^\n]*\n(?P<code>.*?)^```",
    re.S | re.M,
)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"', re.M)
DEMO_COMMAND = "hptune report examples/demo.yaml -o docs/demo/demo-report.md"
PHASE_PAGES = {
    "baseline": "method/baseline.md",
    "learning_rate": "method/learning-rate.md",
    "batch_size": "method/batch-size.md",
    "epochs": "method/epochs.md",
    "regularization": "method/regularization.md",
    "final": "method/final.md",
}


@dataclass(frozen=True)
class Sample:
    page: Path
    index: int
    lang: str
    code: str
    note: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}#{self.index}"


def _samples(page: Path) -> list[Sample]:
    return [
        Sample(page, i, m["lang"], m["code"], (m["note"] or "").strip())
        for i, m in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8")))
    ]


# docs/demo holds the demo's generated report: output, not samples
SAMPLES = [s for page in PAGES if page.parent.name != "demo" for s in _samples(page)]
INCLUDED = sorted({ROOT / m["path"] for p in PAGES for m in SNIPPET.finditer(p.read_text())})


def _of(lang: str, *notes: str) -> list:
    chosen = [s for s in SAMPLES if s.lang == lang and s.note in notes]
    marks = {"slow": [pytest.mark.slow]}
    return [pytest.param(s, id=s.id, marks=marks.get(s.note, [])) for s in chosen]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING -" not in done.stderr  # strict mode fails on them; say which
    return out


def test_the_site_builds_in_strict_mode(site) -> None:
    reference = (site / "reference" / "configuration" / "index.html").read_text()
    assert "phases.regularization.sampler_seed" in reference
    api = (site / "reference" / "api" / "index.html").read_text()
    listed = re.findall(r"::: (\S+)\n    options:\n      members: \[([^\]]+)\]",
                        (DOCS / "reference" / "api.md").read_text())  # fmt: skip
    expected = [f"{module}.{name.strip()}" for module, names in listed for name in names.split(",")]
    assert len(expected) > 30
    assert [e for e in expected if f'id="{e}"' not in api] == []  # each rendered from its docstring
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    assert "The search suite" in benchmarks  # benchmarks/README.md, included


#: The elements a page of the site may hold (HTML, and the SVG of icons and plots): any other
#: tag is text the Markdown passed through as HTML, which the browser swallows.
HTML_TAGS = frozenset(
    """a abbr address article aside audio b blockquote body br button caption circle cite
    clippath code col colgroup dd defs del details dfn div dl dt ellipse em figcaption
    figure footer form g h1 h2 h3 h4 h5 h6 head header hr html i iframe img input ins kbd
    label legend li line lineargradient link main mark meta metadata nav noscript ol
    optgroup option output p path pattern polygon polyline pre q rect s samp script section
    select small source span stop strong style sub summary sup svg symbol table tbody td
    template text textarea tfoot th thead time title tr tspan u ul use var video wbr""".split()  # noqa: SIM905
)
#: A Sphinx role (``:class:`X```) as Markdown renders it: shown as it is.
SPHINX_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|exc|obj|ref|doc):(?:<code>|`)")


class _UnknownTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: set[str] = set()

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in HTML_TAGS:
            self.found.add(tag)


def site_problems(pages: dict[str, str]) -> list[str]:
    """Text lost or shown raw in rendered pages: unknown tags (``<output_dir>`` written in
    plain text) and Sphinx roles."""
    problems = []
    for name, html in pages.items():
        tags = _UnknownTags()
        tags.feed(html)
        problems += [f"{name}: <{tag}> swallowed as HTML" for tag in sorted(tags.found)]
        problems += [f"{name}: raw role {role}" for role in sorted(set(SPHINX_ROLE.findall(html)))]
    return problems


def test_no_text_is_lost_to_html_nor_shown_as_a_raw_role(site) -> None:
    pages = {str(p.relative_to(site)): p.read_text() for p in site.rglob("*.html")}
    assert len(pages) > 20
    assert site_problems(pages) == []


def test_the_site_check_finds_what_markdown_would_swallow() -> None:
    import markdown

    text = "Saved under <output_dir>/checkpoints, see :class:`hptune.TuneConfig`."
    page = markdown.markdown(text)  # as mkdocs renders a page
    assert site_problems({"page.html": page}) == [
        "page.html: <output_dir> swallowed as HTML",
        "page.html: raw role :class:<code>",
    ]
    fixed = markdown.markdown("Saved under `<output_dir>/checkpoints`, see `hptune.TuneConfig`.")
    assert site_problems({"page.html": fixed}) == []


def test_the_site_loads_nothing_from_outside(site) -> None:
    """It opens offline: no stylesheet, script, font or image from another host."""
    fetched = re.compile(r'<(?:link|script|img)[^>]* (?:href|src)="(?:https?:)?//', re.I)
    pages = [p for p in site.rglob("*.html") if fetched.search(p.read_text())]
    assert pages == []


def test_every_page_is_in_the_site(site) -> None:
    built = {p.relative_to(DOCS).with_suffix("") for p in PAGES}
    missing = [str(p) for p in built if not (site / _html_path(p)).is_file()]
    assert missing == []


def _html_path(page: Path) -> Path:
    return Path("index.html") if page.name == "index" else page / "index.html"


@pytest.mark.parametrize("phase", list(PHASE_PAGES))
def test_each_phase_page_shows_a_figure_made_by_the_command_it_names(site, phase) -> None:
    page = DOCS / PHASE_PAGES[phase]
    commands = [s.code for s in _samples(page) if s.lang == "bash"]
    assert any(DEMO_COMMAND in code for code in commands), f"{page} must name {DEMO_COMMAND!r}"
    html_file = site / _html_path(Path(PHASE_PAGES[phase]).with_suffix(""))
    images = re.findall(r'<img[^>]* src="([^"]+\.svg)"', html_file.read_text())
    figures = [(html_file.parent / src).resolve() for src in images]
    ours = [f for f in figures if f.name.startswith(f"{phase}-")]
    assert ours, f"{html_file} shows no {phase} figure: {images}"
    for built in ours:  # each is the command's output, committed under docs/demo
        source = DOCS / "demo" / "demo-report-figures" / built.name
        assert source.is_file() and built.read_bytes() == source.read_bytes()
        assert source.read_text().lstrip().startswith("<svg") and "<path" in source.read_text()
    assert "eval_loss per seed" in html_file.read_text()  # the phase's table, from the report


@pytest.mark.parametrize("sample", _of("python", "", "slow"))
def test_every_python_sample_runs(sample: Sample, demo_path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # samples name paths from the repository root, as the README does
    exec(compile(sample.code, sample.id, "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("sample", _of("bash", "", "slow"))
def test_every_shell_sample_runs(sample: Sample, demo_path) -> None:
    done = _run_shell(sample.code)
    assert done.returncode == 0, f"{sample.id}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr


def _run_shell(code: str, **env: str) -> subprocess.CompletedProcess:
    assert (ROOT / ".venv" / "bin" / "hptune").exists(), "run bash scripts/bootstrap.sh first"
    for config in re.findall(r"docs/examples/[\w-]+\.yaml", code):  # start each run afresh
        output_dir = yaml.safe_load((ROOT / config).read_text())["output_dir"]
        shutil.rmtree((ROOT / config).parent / output_dir, ignore_errors=True)
    return subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=ROOT, text=True,
                          capture_output=True, timeout=900, env={**os.environ, **env})  # fmt: skip


@pytest.mark.parametrize("sample", _of("yaml", ""))
def test_every_yaml_sample_is_valid_configuration(sample: Sample, monkeypatch) -> None:
    from hptune.config import config_from_dict

    monkeypatch.setenv("HPTUNE_STORAGE", "postgresql://user:pw@127.0.0.1/hptune")
    base = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    config_from_dict(_merged(base, yaml.safe_load(sample.code)), base_dir=ROOT / "examples")


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both else value
    return merged


def test_every_sample_is_run_somewhere() -> None:
    """A sample run by a named test names one that exists; no other kind of block slips by."""
    for sample in SAMPLES:
        if sample.note.startswith("tests/"):
            path, _, name = sample.note.partition("::")
            tree = ast.parse((ROOT / path).read_text())
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert name in names, f"{sample.id}: {sample.note} does not exist"
        else:
            assert sample.note in ("", "slow"), f"{sample.id}: unknown note {sample.note!r}"
            assert sample.lang in ("python", "bash", "yaml", "text"), f"{sample.id}: {sample.lang}"


def test_included_benchmark_commands_are_smoke_tested() -> None:
    """Benchmarks take minutes to hours: each script the docs include is run with --quick."""
    smoke = (ROOT / "tests" / "test_benchmarks.py").read_text()
    scripts = [
        script
        for page in INCLUDED
        for m in BLOCK.finditer(page.read_text())
        if m["lang"] == "bash"
        for script in re.findall(r"benchmarks/([\w/]+\.py)", m["code"])
    ]
    assert scripts, f"no benchmark command found in {INCLUDED}"
    assert [s for s in scripts if f'_run("{s}"' not in smoke] == []


WORKERS_TEST = "test_the_workers_sample_shares_the_grid"


@pytest.mark.slow
def test_the_workers_sample_shares_the_grid(demo_path, postgres_url) -> None:
    import optuna

    page = DOCS / "scaling-out.md"
    (sample,) = [s for s in _samples(page) if s.note.endswith("::" + WORKERS_TEST)]
    done = _run_shell(sample.code, HPTUNE_STORAGE=postgres_url)
    assert done.returncode == 0, done.stderr[-3000:]
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in done.stdout + done.stderr
    from hptune.storage import driver_url

    study = optuna.load_study(study_name="docs-workers.learning_rate",
                              storage=driver_url(postgres_url))  # fmt: skip
    trials = study.get_trials()
    assert {t.state.name for t in trials} == {"COMPLETE"}
    grid = [t for t in trials if keys.RACE_OF not in t.user_attrs]
    rates = sorted(t.params["learning_rate"] for t in grid)
    assert len(rates) == len(set(rates))  # each rate once, those past an edge too
    assert [r for r in rates if r in (1e-3, 5e-3, 1e-2, 5e-2)] == [1e-3, 5e-3, 1e-2, 5e-2]
    # Racing seeds (extra paired seeds for the undecided contenders) are shared too: each
    # names a grid trial and no (trial, seed) pair is trained twice.
    races = [(t.user_attrs[keys.RACE_OF], tuple(t.user_attrs[keys.RACE_SEEDS])) for t in trials
             if keys.RACE_OF in t.user_attrs]  # fmt: skip
    assert {of for of, _ in races} <= {t.number for t in grid}
    assert len(races) == len(set(races))
    assert len({t.user_attrs["worker"] for t in trials}) > 1
    assert "done" in done.stdout  # hptune status: the phase is done


def test_the_quick_start_commands_are_the_readme_s() -> None:
    """The quick start is the README's two commands. CI runs the second (.ci/run), and
    tests/test_demo_run.py runs the first's demo configuration (in a temporary output
    directory: its first two phases, and with ``-m demo`` all of it)."""
    quick = [s.code.strip() for s in _samples(DOCS / "index.md") if s.lang == "bash"]
    readme = [m["code"].strip() for m in BLOCK.finditer((ROOT / "README.md").read_text())
              if m["lang"] == "bash"]  # fmt: skip
    assert quick == readme[:2]
    assert quick[0].endswith("hptune run examples/demo.yaml")
    ci = (ROOT / ".ci" / "run").read_text()
    assert all(line in ci for line in quick[1].split(" && "))


def test_the_configuration_reference_explains_every_key() -> None:
    sys.path.insert(0, str(DOCS))
    try:
        import _hooks
    finally:
        sys.path.pop(0)
    rows = [re.split(r"(?<!\\)\|", r)[1:-1] for r in _hooks.configuration_reference().splitlines()
            if r.startswith("| `")]  # fmt: skip
    assert len(rows) > 40 and all(len(cells) == 4 for cells in rows)
    unexplained = [key.strip() for key, _, _, meaning in rows if not meaning.strip()]
    assert unexplained == [], f"add a #: comment above each in hptune/config/: {unexplained}"


def test_the_configuration_reference_lists_every_key_of_every_section() -> None:
    # Optional sections (budget: off unless given) too: their keys are what users look up.
    import typing

    from pydantic import BaseModel

    from hptune.config import PhasesConfig, TuneConfig, phase_section_models

    sys.path.insert(0, str(DOCS))
    try:
        import _hooks
    finally:
        sys.path.pop(0)
    listed = set(re.findall(r"^\| `([^`]+)` \|", _hooks.configuration_reference(), re.M))

    def keys(model: type[BaseModel], prefix: str) -> list[str]:
        found = []
        for name, field in model.model_fields.items():
            inner = [a for a in (field.annotation, *typing.get_args(field.annotation))
                     if isinstance(a, type) and issubclass(a, BaseModel)]  # fmt: skip
            found += keys(inner[0], f"{prefix}{name}.") if inner else [f"{prefix}{name}"]
        if model is PhasesConfig:  # each registered phase's section
            for name, section in phase_section_models().items():
                found += keys(section, f"{prefix}{name}.")
        return found

    every = keys(TuneConfig, "")
    assert "budget.gpu_hours" in every
    assert [key for key in every if key not in listed] == []


@pytest.mark.slow
def test_the_package_installs_into_a_fresh_environment(tmp_path) -> None:
    """README's "Install into your own environment": the package builds, installs into
    another environment and its command runs there. The dependencies come from this
    environment (a .pth file naming its site-packages), so nothing is downloaded."""
    import site
    import venv

    env = tmp_path / "env"
    venv.create(env)  # pip and setuptools too come from this environment
    [env_site] = (env / "lib").glob("python*/site-packages")
    (env_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
           "--no-build-isolation", "--no-index", str(ROOT)]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    version = subprocess.run([str(env / "bin" / "hptune"), "--version"], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert version.stdout.strip() == "hptune 0.1.0", version.stderr[-2000:]
    code = "import hptune; print(hptune.__file__)"
    where = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert where.stdout.strip().startswith(str(env_site)), where  # the installed copy
