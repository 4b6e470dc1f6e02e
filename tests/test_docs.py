"""The documentation site: it builds in strict mode (any warning fails), every Python sample
in it runs, and the generated configuration reference explains every key."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").rglob("*.md"))
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
SAMPLES = [
    (page, index, code)
    for page in PAGES
    for index, code in enumerate(PYTHON_BLOCK.findall(page.read_text()))
]


def test_the_site_builds_in_strict_mode(tmp_path) -> None:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING -" not in done.stderr  # strict mode fails on them; say which
    reference = (tmp_path / "reference" / "configuration" / "index.html").read_text()
    assert "phases.regularization.sampler_seed" in reference
    assert (
        "MemoryBoundedBatchSampler" in (tmp_path / "reference" / "api" / "index.html").read_text()
    )


@pytest.mark.parametrize(("page", "index", "code"), SAMPLES,
                         ids=[f"{p.relative_to(ROOT)}#{i}" for p, i, _ in SAMPLES])  # fmt: skip
def test_every_python_sample_runs(page, index, code, demo_path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # samples name paths from the repository root, as the README does
    exec(compile(code, f"{page}:{index}", "exec"), {"__name__": "__docs__"})


def test_the_configuration_reference_explains_every_key() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _hooks
    finally:
        sys.path.pop(0)
    rows = [re.split(r"(?<!\\)\|", r)[1:-1] for r in _hooks.configuration_reference().splitlines()
            if r.startswith("| `")]  # fmt: skip
    assert len(rows) > 40 and all(len(cells) == 4 for cells in rows)
    unexplained = [key.strip() for key, _, _, meaning in rows if not meaning.strip()]
    assert unexplained == [], f"add a #: comment above each in hptune/config.py: {unexplained}"
