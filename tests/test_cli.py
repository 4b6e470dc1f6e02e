"""The command as a user runs it: exit codes, messages, nothing written on errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def hptune(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hptune", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ,
        timeout=600,
    )


def test_import_does_not_pull_torch() -> None:
    code = (
        "import sys, hptune; "
        "print(sorted(m for m in ('torch', 'transformers', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_presets_prints_the_tables() -> None:
    out = hptune("presets")
    assert out.returncode == 0, out.stderr
    for fragment in ("lora", "1e-05", "16-32", "colab_free", "0.0002", "5%-10%"):
        assert fragment in out.stdout


def _bad_configs(tiny: dict) -> dict[str, tuple[str, str]]:
    unknown = {**tiny, "trainin": {}}
    negative = {**tiny, "training": {**tiny["training"], "learning_rate": -0.001}}
    missing_data = {**tiny, "data": {**tiny["data"], "train": "missing/train.jsonl"}}
    missing_model = {**tiny, "model": {"path": "./no/such/model"}}
    margin = {**tiny, "objective": {**tiny["objective"], "equivalence_margin": "2 percent"}}
    return {
        "bad margin": (
            yaml.safe_dump(margin),
            "objective.equivalence_margin: equivalence margin '2 percent' is not a percentage",
        ),
        "unknown key": (yaml.safe_dump(unknown), "trainin: unknown key; did you mean 'training'"),
        "negative lr": (yaml.safe_dump(negative), "training.learning_rate"),
        "missing data": (yaml.safe_dump(missing_data), "data.train: file"),
        "missing model": (yaml.safe_dump(missing_model), "model.path:"),
        "malformed yaml": ("model: [oops\n  data: 1\n", "not valid YAML"),
    }


@pytest.mark.parametrize(
    "case",
    ["unknown key", "negative lr", "missing data", "missing model", "malformed yaml", "bad margin"],
)
def test_bad_config_exits_cleanly_and_writes_nothing(
    tmp_path: Path, tiny_config_dict: dict, case: str
) -> None:
    text, expected = _bad_configs(tiny_config_dict)[case]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = hptune("run", str(config))
    assert out.returncode == 2
    assert expected in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.startswith("hptune: error:")
    assert not Path(tiny_config_dict["output_dir"]).exists()  # no storage was created


def test_status_before_any_run_creates_nothing(tmp_path: Path, tiny_config_dict: dict) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict))
    out = hptune("status", str(config))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("pending") == 2
    assert not Path(tiny_config_dict["output_dir"]).exists()


def test_qlora_without_cuda_is_refused_up_front(tmp_path: Path, tiny_config_dict: dict) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    tiny_config_dict["method"] = {"type": "qlora"}
    config = tmp_path / "q.yaml"
    config.write_text(yaml.safe_dump(tiny_config_dict))
    out = hptune("run", str(config))
    assert out.returncode == 2
    assert "qlora" in out.stderr and "CUDA" in out.stderr
    assert "Traceback" not in out.stderr
    assert not Path(tiny_config_dict["output_dir"]).exists()
