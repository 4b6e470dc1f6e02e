"""The chat and Alpaca examples, quick: baseline and learning rate on a slice, with hptune run's
own path (the YAML file, its relative chat template, the demo's data in each format)."""

import json
from pathlib import Path

import pytest
import yaml

from hptune import keys
from hptune.cli import main
from tests.conftest import EXAMPLES


def _quick(name: str, tmp_path) -> str:
    raw = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    raw["objective"].update(seeds=2, max_seeds=2, eval_samples=8, max_new_tokens=8)
    raw["training"].update(max_train_examples=48, max_validation_examples=32, epochs=1,
                           batch_size=16, gradient_accumulation_steps=1)  # fmt: skip
    raw["phases"] = {
        "run": ["baseline", "learning_rate"],
        "learning_rate": {"grid": [5e-3, 5e-2], "extend_edges": 0},
    }
    raw["guardrails"] = {"ignore": ["high_learning_rate", "two_seeds"]}
    raw["output_dir"] = str(tmp_path / "out")
    if "chat_template" in raw["data"]:
        raw["data"]["chat_template"] = str(EXAMPLES / raw["data"]["chat_template"])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(("name", "detected", "marked"), [
    ("chat", "data format: chat", "<|assistant|>\n⟦The "),
    ("alpaca", "data format: alpaca", "### Response:\n⟦The "),
])  # fmt: skip
def test_the_example_plans_and_runs(name, detected, marked, tmp_path, demo_path, capsys) -> None:
    import optuna

    config = _quick(name, tmp_path)
    assert main(["plan", config]) == 0
    out = capsys.readouterr().out
    assert detected in out and marked in out
    assert main(["run", "-q", config]) == 0
    study = optuna.load_study(study_name=f"{name}.learning_rate",
                              storage=f"sqlite:///{tmp_path}/out/hptune.db")  # fmt: skip
    trials = study.get_trials()
    assert sorted(t.params["learning_rate"] for t in trials) == [5e-3, 5e-2]
    metric = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())["objective"]["metric"]
    for trial in trials:  # every seed scored by the text metric, 0-100
        epochs = [e for run in trial.user_attrs["runs"] for e in run["epochs"]]
        assert epochs and all(0 <= e["score"] <= 100 for e in epochs), metric
    decision = json.loads(study.user_attrs[keys.DECISION])
    assert decision["params"]["learning_rate"] in (5e-3, 5e-2)


def test_the_docs_show_what_plan_prints(demo_path) -> None:
    """docs/data.md shows each example's format line and first example as plan prints them."""
    from hptune.plan import make_plan

    page = (EXAMPLES.parent / "docs" / "data.md").read_text()
    for name in ("chat", "alpaca"):
        summary = make_plan(str(EXAMPLES / f"{name}.yaml")).data
        assert summary is not None
        lines = summary.lines()
        shown = "\n".join([lines[0], *lines[3:]])  # format, then the marked example
        assert f"```text\n{shown}\n```" in page, name
        if name == "chat":
            assert f"```text\n{lines[1]}\n```" in page  # the length percentiles


def test_the_readme_shows_what_plan_prints(demo_path) -> None:
    """The README's chat block and its one-line template example are what plan prints."""
    from hptune.plan import make_plan

    readme = (EXAMPLES.parent / "README.md").read_text()
    chat = make_plan(str(EXAMPLES / "chat.yaml")).data
    assert chat is not None
    block = "\n".join("  " + line for line in chat.example.splitlines())
    assert f"  ```text\n{block}\n  ```" in readme
    demo = make_plan(str(EXAMPLES / "demo.yaml")).data
    assert demo is not None
    flat = " ".join(readme.split())
    assert f"`{demo.example.replace(chr(10), chr(92) + 'n')}`" in flat


def test_the_chat_sft_example_tunes_and_its_export_trains_with_trl_alone(
    tmp_path, demo_path
) -> None:
    # backend sft, packing, adamw_torch and a LoRA rank phase, quick; then the exported
    # recipe trained by a plain SFTTrainer script that never imports hptune.
    import subprocess
    import sys

    from hptune.demo import resolve_demo_path

    raw = yaml.safe_load((EXAMPLES / "chat_sft.yaml").read_text())
    raw["objective"].update(seeds=2, max_seeds=2)
    raw["training"].update(max_train_examples=48, max_validation_examples=32, epochs=1,
                           batch_size=8, gradient_accumulation_steps=1)  # fmt: skip
    raw["phases"] = {"run": ["baseline", "learning_rate", "lora_rank"],
                     "learning_rate": {"grid": [5e-3, 5e-2], "extend_edges": 0},
                     "lora_rank": {"ranks": [4, 8]}}  # fmt: skip
    raw["guardrails"] = {"ignore": ["high_learning_rate", "two_seeds"]}
    raw["output_dir"] = str(tmp_path / "out")
    raw["data"]["chat_template"] = str(EXAMPLES / raw["data"]["chat_template"])
    config = tmp_path / "chat_sft.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["run", "-q", str(config)]) == 0
    assert main(["export", str(config), "-o", str(tmp_path / "export")]) == 0
    [recipe] = (tmp_path / "export").glob("*.json")
    exported = json.loads(recipe.read_text())
    assert exported["hptune"]["backend"] == "sft" and exported["sft_config"]["packing"] is True
    assert exported["training_args"]["optim"] == "adamw_torch"
    assert exported["lora_config"]["r"] in (4, 8)
    script = EXAMPLES / "train_from_export.py"
    code = [line for line in script.read_text().splitlines()
            if line.strip() and not line.startswith(("#", '"""', "    ", " "))]  # fmt: skip
    assert "hptune" not in script.read_text().split('"""')[-1]  # imports no hptune
    train = tmp_path / "train.jsonl"  # the run's slice of the training data
    rows = resolve_demo_path("demo://data/chat/train.jsonl")
    lines = Path(rows).read_text(encoding="utf-8").splitlines(keepends=True)
    train.write_text("".join(lines[:48]))
    done = subprocess.run(
        [sys.executable, str(script), str(recipe), resolve_demo_path("demo://model"), str(train),
         resolve_demo_path("demo://data/chat/validation.jsonl"), str(tmp_path / "trl")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "eval_loss" in json.loads(done.stdout.strip().splitlines()[-1])
    assert len(code) <= 22, code  # a short script: imports and a dozen statements
