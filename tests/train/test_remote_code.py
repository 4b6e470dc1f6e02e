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

Path({marker!r}).write_text("the model's own code ran")


class ShippedForCausalLM(LlamaForCausalLM):
    pass
"""


def _model_with_code(demo_path, tmp_path, marker):
    folder = tmp_path / "model"
    shutil.copytree(demo_path / "model", folder)
    # an absolute marker: transformers runs the code from a copy in its modules cache
    (folder / "modeling_shipped.py").write_text(MODELING.format(marker=str(marker)))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_shipped.ShippedForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_shipped_code_runs_only_on_opt_in(demo_path, tmp_path) -> None:
    marker = tmp_path / "RAN"
    folder = _model_with_code(demo_path, tmp_path, marker)
    assert ModelConfig(path=str(folder)).trust_remote_code is False  # the default

    model = load_base_model(ModelConfig(path=str(folder)), MethodConfig())
    load_tokenizer(ModelConfig(path=str(folder)))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not marker.exists()

    opted_in = load_base_model(ModelConfig(path=str(folder), trust_remote_code=True),
                               MethodConfig())  # fmt: skip
    assert type(opted_in).__name__ == "ShippedForCausalLM"
    assert marker.exists()  # the control: with the opt-in, the code did run
