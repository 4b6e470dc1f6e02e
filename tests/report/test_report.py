"""The report of a real five-phase run: content read back from the storage, Markdown, plots,
errors, and a rendering check in headless Chromium (run in CI, where .ci/run installs it)."""

import html
import math
import os
import re
import subprocess
import sys
from importlib.metadata import version

import optuna
import pytest
import yaml

from hptune.report import collect, write_report
from hptune.report._collect import PhaseEvidence
from hptune.report._figures import curves_figure, param_figure
from tests.report.chromium import find_chromium, render

PHASES = ["baseline", "learning_rate", "batch_size", "epochs", "regularization", "final"]
# Plots per phase: the parameter against the metric (or throughput, or test) + the curves.
FIGURES = {"baseline": 1, "learning_rate": 2, "batch_size": 2, "epochs": 2,
           "regularization": 2, "final": 2}  # fmt: skip


@pytest.fixture(scope="module")
def report(five, tmp_path_factory):
    config, result, _ = five
    out = tmp_path_factory.mktemp("report")
    (page,) = write_report(config, out / "run.html")
    (markdown,) = write_report(config, out / "run.md")
    return config, result, page.read_text(), markdown


def _section(page: str, phase: str) -> str:
    start = page.index(f'<h2 id="{phase}">')
    end = page.find("<h2 ", start + 1)
    return page[start:end]


def test_every_phase_has_its_decision_table_and_plots(report) -> None:
    _, result, page, _ = report
    for phase in [*result.phases, result.final]:
        section = _section(page, phase.phase)
        assert html.escape(phase.decision.reason) in section
        assert section.count("<svg") == FIGURES[phase.phase], phase.phase
        for outcome in phase.outcomes:  # each trial's row, with every seed's value
            values = " ".join(f"{v:.4g}" for _, v in sorted(outcome.seed_values.items()))
            assert f"<td>{outcome.number}</td>" in section
            assert values in section


def test_the_regularization_section_says_at_which_rate_each_candidate_won(report) -> None:
    _, result, page, _ = report
    (regularization,) = [p for p in result.phases if p.phase == "regularization"]
    won = regularization.decision.summary["rates_won"]
    section = _section(page, "regularization")
    assert "The rate each candidate won at" in section
    for row in won:
        assert html.escape(row["candidate"]) in section
        assert f"<td>{row['learning_rate']:.3g}</td>" in section


def test_the_final_test_result_and_the_export_are_shown(report) -> None:
    from hptune._export import exported_config

    config, result, page, _ = report
    test_values = result.final.decision.summary["test"]["values"]
    assert test_values and all(math.isfinite(v) for v in test_values)
    assert "test (reported only, never used to decide)" in _section(page, "final")
    exported = re.search(r"<pre><code>(.*?)</code></pre>", _section(page, "exported"), re.S)
    assert yaml.safe_load(html.unescape(exported.group(1))) == exported_config(config)


def test_the_environment_names_versions_device_fingerprints_and_bleu(report) -> None:
    from hptune.train.metrics import bleu_signature

    config, _, page, _ = report
    section = _section(page, "environment")
    for library in ("torch", "transformers", "peft", "accelerate", "optuna", "sacrebleu"):
        assert f"<td>{library}</td><td>{html.escape(version(library))}</td>" in section
    assert "<td>device</td><td>cpu: " in section
    assert f"<td>sacrebleu signature</td><td>{bleu_signature()}</td>" in section
    study = optuna.load_study(study_name="tiny.baseline", storage=config.storage_url)
    fingerprints = study.user_attrs["hptune.setup"]["fingerprints"]
    assert set(fingerprints) == {"train", "validation", "test"}
    for split, digest in fingerprints.items():
        assert f"<td>fingerprint: {split}</td><td>{digest}</td>" in section


def test_the_page_is_self_contained(report) -> None:
    _, _, page, _ = report
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched: renders offline


def test_markdown_links_every_plot_as_an_svg_file(report) -> None:
    _, result, page, markdown = report
    text = markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == sum(FIGURES.values()) == page.count("<svg")
    for link in links:
        assert (markdown.parent / link).read_text().startswith("<svg")
    for phase in result.phases:
        assert f"**Decision ({phase.decision.case})" in text


def test_the_same_run_gives_the_same_plots_byte_for_byte(report, tmp_path) -> None:
    """No date and no random ids in the SVGs: a committed report diffs only where the run did."""
    config, _, _, markdown = report
    (again,) = write_report(config, tmp_path / "run.md")
    first = sorted((markdown.parent / "run-figures").iterdir())
    second = sorted((again.parent / "run-figures").iterdir())
    assert [p.name for p in first] == [p.name for p in second] and first
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_diverged_and_pruned_trials_are_marked_on_the_curves() -> None:
    """Trials told through real ask/tell; a diverged run's NaN is not drawn as a value."""
    from hptune.record import outcome_from_trial

    study = optuna.create_study()
    shapes = {"ok": [3.0, 2.5, 2.2], "pruned": [3.1, 2.9], "diverged": [3.0, math.nan]}
    rates = {"ok": 1e-3, "pruned": 1e-4, "diverged": 1e-1}
    for status, losses in shapes.items():
        study.enqueue_trial({"learning_rate": rates[status]})
        trial = study.ask(
            {"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1, log=True)}
        )
        epochs = [{"epoch": i + 1, "train_loss": v, "eval_loss": v, "score": None}
                  for i, v in enumerate(losses)]  # fmt: skip
        trial.set_user_attr("runs", [{"seed": 0, "epochs": epochs}])
        trial.set_user_attr("status", status)
        if status == "ok":
            trial.set_user_attr("seed_values", {"0": min(losses)})
            study.tell(trial, min(losses))
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    trials = study.get_trials()
    evidence = PhaseEvidence("learning_rate", "x.learning_rate", "done", None,
                             [outcome_from_trial(t) for t in trials], trials)  # fmt: skip
    svg = curves_figure(evidence, "eval_loss")
    assert "#0 learning_rate=0.001 (ok)" in svg  # each trial's legend entry names its status
    assert "#1 learning_rate=0.0001 (pruned)" in svg
    assert "#2 learning_rate=0.1 (diverged)" in svg
    assert "nan" not in svg.lower()  # the diverged epoch is a gap, not a drawn value
    lr_svg = param_figure(evidence, "learning_rate", "eval_loss")
    assert re.findall(r">(diverged|pruned)<", lr_svg) == ["pruned", "diverged"]


def test_cli_errors_are_one_paragraph_and_exit_2(demo_path, tmp_path, tiny_config_dict) -> None:
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config_dict))
    command = [sys.executable, "-m", "hptune", "report", str(config_path)]
    before = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert before.returncode == 2
    assert "run 'hptune run' on this configuration first" in before.stderr
    assert "Traceback" not in before.stderr
    wrong = subprocess.run([*command, "-o", str(tmp_path / "r.pdf")], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert wrong.returncode == 2 and "ending in .html" in wrong.stderr
    assert not (tmp_path / "r.pdf").exists()


def test_collect_refuses_a_storage_without_this_run(five, tmp_path) -> None:
    from hptune.exceptions import ConfigError

    config, _, _ = five
    other = config.model_copy(update={"name": "other"})
    with pytest.raises(ConfigError, match="holds no phase of run 'other'"):
        collect(other)


def test_the_report_renders_in_headless_chromium(report, tmp_path) -> None:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render the report: .ci/run installs Debian's chromium")
        pytest.skip("no Chromium here (apt-get install chromium); CI runs this check")
    config, _, _, _ = report
    page = tmp_path / "run.html"
    write_report(config, page)
    rendering = render(page, tmp_path / "run.png", binary)
    assert rendering.problems == []
    for phase in PHASES:
        assert len(rendering.in_section(phase, "figure")) == FIGURES[phase], phase
        # the trials; the regularization phase adds the rate each candidate won at
        tables = 2 if phase == "regularization" else 1
        assert len(rendering.in_section(phase, "table")) == tables, phase
    # The check fails when the plots do not draw: the same page with empty SVGs.
    blank = tmp_path / "blank.html"
    blank.write_text(re.sub(r"(<svg[^>]*>).*?</svg>", r"\1</svg>", page.read_text(), flags=re.S))
    broken = render(blank, tmp_path / "blank.png", binary)
    assert len([p for p in broken.problems if "nothing plotted" in p]) == sum(FIGURES.values())


def test_the_docs_demo_files_are_what_report_and_export_write(five, tmp_path) -> None:
    """The docs' phase pages show docs/demo/, written by `hptune report examples/demo.yaml -o
    docs/demo/demo-report.md` and `hptune export examples/demo.yaml -o docs/demo`. The same
    commands on this five-phase run write the same figures, the same sections and the same
    exported keys (the whole demo checks it on the demo itself: tests/test_demo_run.py)."""
    from pathlib import Path

    from hptune.cli import main

    config, _, _ = five
    config_file = tmp_path / "five.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    written = tmp_path / "docs-demo" / "five-report.md"
    assert main(["report", str(config_file), "-o", str(written)]) == 0
    committed = Path(__file__).resolve().parents[2] / "docs" / "demo"
    figures = sorted(p.name for p in (written.parent / "five-report-figures").iterdir())
    assert figures == sorted(p.name for p in (committed / "demo-report-figures").iterdir())

    def headings(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line.startswith("## ")]

    assert headings(written) == headings(committed / "demo-report.md")
    assert main(["export", str(config_file), "-o", str(written.parent)]) == 0
    exported = yaml.safe_load((written.parent / f"{config.name}-best.yaml").read_text())
    shown = yaml.safe_load((committed / "demo-best.yaml").read_text())
    for section in ("training_args", "lora_config", "early_stopping"):
        assert exported[section].keys() == shown[section].keys(), section
    assert exported["hptune"]["decisions"].keys() == shown["hptune"]["decisions"].keys()
