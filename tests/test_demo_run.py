"""The README's main job: the demo's configuration, with the method's shape where it is known.

CI runs the demo's first two phases (baseline and learning rate: the shape the lecture states);
its grid extension at the demo's scale is under the ``demo`` marker with the whole demo;
the other phases run on a smaller configuration elsewhere in the suite (the shared five-phase
run, tests/report). The whole demo, as `hptune run examples/demo.yaml` runs it (12 minutes
here), is the `demo` marker: `python -m pytest -m demo`.
"""

from pathlib import Path

import pytest

import hptune
from hptune.seeds import paired_difference

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"


def _check_the_learning_rate_phase(config, result) -> None:
    lr_phase = result.phases[1]
    assert lr_phase.phase == "learning_rate"
    grid = config.phases.learning_rate.grid
    by_lr = {o.params["learning_rate"]: o for o in lr_phase.outcomes}
    chosen = lr_phase.decision.params["learning_rate"]
    assert grid[0] < chosen < grid[-1]  # at neither end of the grid
    # 0.01 trains better than 0.005 on every seed (by about 0.15): a "not told apart" must
    # never hand the decision to the lower rate; only a shown equivalence could.
    assert chosen == 1e-2 or lr_phase.decision.case in ("best_mean_equivalent", "lowest_equivalent")

    lowest, highest = by_lr[grid[0]], by_lr[grid[-1]]
    # The lowest rate clearly under-trains: worse than the chosen one beyond seed noise.
    assert paired_difference(lowest.seed_values, by_lr[chosen].seed_values).excludes_zero
    assert lowest.mean > by_lr[chosen].mean
    # The highest is worse than the chosen one, or diverged.
    assert highest.status == "diverged" or highest.mean > by_lr[chosen].mean


@pytest.mark.slow
def test_the_demo_s_learning_rate_phase_has_the_lectures_shape(demo_path, tmp_path, capsys):
    """The demo's configuration as it is, its first two phases: the rate chosen inside the
    grid, the lowest rate worse beyond seed noise, the highest worse or diverged."""
    config = hptune.load_config(DEMO)
    run = {"run": ["baseline", "learning_rate"], "test_evaluation": False}
    phases = config.phases.model_copy(update=run)
    # no racing: the grid on the demo's 3 seeds has the lecture's shape already (racing is
    # tests/pipeline/test_racing.py's subject, and the demo's whole run, -m demo, races)
    objective = config.objective.model_copy(update={"max_seeds": len(config.objective.seed_list)})
    config = config.model_copy(
        update={"output_dir": str(tmp_path), "phases": phases, "objective": objective}
    )
    result = hptune.run(config)
    printed = capsys.readouterr().out
    assert "demo.baseline" in printed and "demo.learning_rate" in printed
    assert printed.count("decision (") == 2
    _check_the_learning_rate_phase(config, result)


@pytest.mark.slow
@pytest.mark.demo
def test_a_demo_grid_too_low_is_extended_until_the_chosen_rate_is_inside(demo_path, tmp_path):
    """The demo with a grid whose best rate is its top, 0.005: the phase tries 0.01 and 0.02
    past it before deciding, and ends with a rate inside what it tried. Demo-scale (3 min
    here), so under the ``demo`` marker: the extension's rule runs through the real queue in
    every default run (tests/pipeline/test_edges.py), and on a real model in the SmolLM2
    benchmark (benchmarks/README.md)."""
    config = hptune.load_config(DEMO)
    options = config.phases.learning_rate.model_copy(update={"grid": [2.5e-3, 5e-3]})
    run = {"run": ["baseline", "learning_rate"], "test_evaluation": False,
           "learning_rate": options}  # fmt: skip
    phases = config.phases.model_copy(update=run)
    # no racing: the edges are explored before it, and it is not this test's subject
    objective = config.objective.model_copy(update={"max_seeds": len(config.objective.seed_list)})
    config = config.model_copy(
        update={"output_dir": str(tmp_path), "phases": phases, "objective": objective}
    )
    result = hptune.run(config)
    lr_phase = result.phases[1]
    tried = sorted({o.params["learning_rate"] for o in lr_phase.outcomes})
    assert tried == [2.5e-3, 5e-3, 1e-2, 2e-2]  # x2 past the top, twice
    chosen = lr_phase.decision.params["learning_rate"]
    assert tried[0] < chosen < tried[-1]  # inside: the edge was explored, not only advised
    assert "tried past the grid's edge, as the best lay there: 0.01, 0.02" in (
        lr_phase.decision.reason
    )


@pytest.mark.slow
@pytest.mark.demo
def test_the_whole_demo_runs_five_phases_with_the_lectures_shape(demo_path, tmp_path, capsys):
    config = hptune.load_config(DEMO).model_copy(update={"output_dir": str(tmp_path)})
    result = hptune.run(config)
    printed = capsys.readouterr().out
    phases = ["baseline", "learning_rate", "batch_size", "epochs", "regularization", "final"]
    for phase in phases:
        assert f"demo.{phase}" in printed
    assert printed.count("decision (") == len(phases)
    assert "test (reported only, never used to decide)" in printed

    batch = result.phases[2]
    tried = {o.params["batch_size"] for o in batch.outcomes}
    assert tried == {4, 8, 16}  # 32 is predicted not to fit the 50 MB stand-in GPU
    chosen = batch.decision.params
    assert chosen["batch_size"] * chosen["gradient_accumulation_steps"] == 32
    _check_the_learning_rate_phase(config, result)

    _check_the_docs_figures(config, tmp_path)
    _check_the_demo_report(config, tmp_path)


def _check_the_docs_figures(config, tmp_path: Path) -> None:
    """The docs' phase pages show docs/demo/demo-report-figures, written by the command they
    name: `hptune report examples/demo.yaml -o docs/demo/demo-report.md`. Run here on this
    run of the same configuration, it writes the same figures and the same sections; and
    `hptune export` the same keys as the docs' docs/demo/demo-best.yaml."""
    import yaml

    from hptune.cli import main

    config_file = tmp_path / "demo.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    written = tmp_path / "docs-demo" / "demo-report.md"
    assert main(["report", str(config_file), "-o", str(written)]) == 0
    committed = DEMO.parent.parent / "docs" / "demo"
    figures = sorted(p.name for p in (written.parent / "demo-report-figures").iterdir())
    assert figures == sorted(p.name for p in (committed / "demo-report-figures").iterdir())

    def headings(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line.startswith("## ")]

    assert headings(written) == headings(committed / "demo-report.md")

    # docs/results.md: `hptune export examples/demo.yaml -o docs/demo` wrote demo-best.yaml
    assert main(["export", str(config_file), "-o", str(written.parent)]) == 0
    exported = yaml.safe_load((written.parent / "demo-best.yaml").read_text())
    shown = yaml.safe_load((committed / "demo-best.yaml").read_text())
    for section in ("training_args", "lora_config", "early_stopping"):
        assert exported[section].keys() == shown[section].keys(), section
    assert exported["hptune"]["decisions"].keys() == shown["hptune"]["decisions"].keys()


def _check_the_demo_report(config, tmp_path: Path) -> None:
    """The demo's report, captured by headless Chromium: every phase's plots and table drawn.

    With HPTUNE_ARTIFACTS set, the PNG is kept there (CI and the README's figure).
    """
    import os
    import shutil

    from hptune.report import write_report
    from tests.report.chromium import find_chromium, render

    page, markdown = write_report(config)
    assert page.name == "demo-report.html" and markdown.name == "demo-report.md"
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render the report: .ci/run installs Debian's chromium")
        pytest.skip("no Chromium here (apt-get install chromium); CI runs this check")
    rendering = render(page, tmp_path / "demo-report.png", binary)
    assert rendering.problems == []
    figures = {"baseline": 1, "learning_rate": 2, "batch_size": 2, "epochs": 2,
               "regularization": 2, "final": 2}  # fmt: skip
    for phase, n in figures.items():
        assert len(rendering.in_section(phase, "figure")) == n, phase
        assert len(rendering.in_section(phase, "table")) == 1, phase
    if artifacts := os.environ.get("HPTUNE_ARTIFACTS"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(rendering.png, Path(artifacts) / "demo-report.png")
        shutil.copy(page, Path(artifacts) / "demo-report.html")
