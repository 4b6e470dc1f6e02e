"""`trust_remote_code` only on explicit opt-in: a model directory that ships its own Python
code (an `auto_map` in config.json) loads with the library's class, and its code never runs,
unless the configuration says `model.trust_remote_code: true`."""

import json
import shutil

from hptune.config import MethodConfig, ModelConfig
from hptune.train.model import load_base_model, load_tokenizer

MODELING = """
from pathlib import Path

from transformers import LlamaForCausalLM

Path(__file__).with_name("{marker}").write_text("the model's own code ran")


class ShippedForCausalLM(LlamaForCausalLM):
    pass
"""


def _model_with_code(demo_path, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(demo_path / "model", folder)
    (folder / "modeling_shipped.py").write_text(MODELING.format(marker="RAN"))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_shipped.ShippedForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_shipped_code_runs_only_on_opt_in(demo_path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    folder = _model_with_code(demo_path, tmp_path)
    assert ModelConfig(path=str(folder)).trust_remote_code is False  # the default

    model = load_base_model(ModelConfig(path=str(folder)), MethodConfig())
    load_tokenizer(ModelConfig(path=str(folder)))
    assert type(model).__name__ == "LlamaForCausalLM"
    ran = list(tmp_path.rglob("RAN"))
    assert ran == [], ran

    opted_in = load_base_model(ModelConfig(path=str(folder), trust_remote_code=True),
                               MethodConfig())  # fmt: skip
    assert type(opted_in).__name__ == "ShippedForCausalLM"
    assert list(tmp_path.rglob("RAN"))  # the control: with the opt-in, the code did run
