"""Planning for the target GPU from any machine: Llama-3-8B-shaped ``config.json`` files, no
weights on disk, on this CPU."""

import json
import shutil
from pathlib import Path

import pytest

from hptune.config import config_from_dict

LLAMA_3_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "torch_dtype": "bfloat16",
}


@pytest.fixture(scope="module")
def llama_8b(demo_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with Llama-3-8B's config.json, the demo tokenizer, and data of 110 tokens an
    example at most; no weights."""
    folder = tmp_path_factory.mktemp("llama-3-8b")
    (folder / "config.json").write_text(json.dumps(LLAMA_3_8B))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo_path / "model" / name, folder / name)
    words = [
        "revenue",
        "margin",
        "growth",
        "equity",
        "asset",
        "ratio",
        "income",
        "cash",
        "flow",
        "debt",
    ]
    for split, n in (("train", 800), ("validation", 40)):
        with open(folder / f"{split}.jsonl", "w") as f:
            for i in range(n):
                question = " ".join(words[(i + k) % len(words)] for k in range(25))
                f.write(json.dumps({"question": question, "answer": "It is 4."}) + "\n")
    return folder


def plan_for(folder: Path, tmp_path: Path, **training: object):
    from hptune.plan import make_plan

    method = training.pop("method", "lora")
    raw = {
        "name": "llama",
        "model": {"path": str(folder)},
        "method": {"type": method},
        "data": {"train": str(folder / "train.jsonl"),
                 "validation": str(folder / "validation.jsonl"),
                 "template": "Question: {question}\nAnswer: ", "max_length": 256},
        "training": training,
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip
    return make_plan(config_from_dict(raw))


def test_no_weights_are_needed_to_plan(llama_8b: Path) -> None:
    assert not list(llama_8b.glob("*.safetensors")) and not list(llama_8b.glob("*.bin"))


def test_24_gb_starts_at_a_batch_that_fits_with_the_effective_batch_kept(
    llama_8b: Path, tmp_path: Path
) -> None:
    plan = plan_for(llama_8b, tmp_path, device="a10g")
    memory = {row["batch_size"]: row for row in plan.memory}
    assert not memory[8]["fits"]  # the 24 GB row of the presets says 8: predicted too big
    assert (plan.hparams.batch_size, plan.hparams.gradient_accumulation_steps) == (4, 2)
    assert memory[4]["fits"]
    assert plan.sources["batch_size"].startswith("table: batch size for 24 GB GPU memory; "
                                                 "lowered from 8")  # fmt: skip
    assert "keep the effective batch 8" in plan.sources["gradient_accumulation_steps"]
    assert not [f for f in plan.guardrails if f.check == "batch_over_memory"]
    assert "a10g, 24 GiB, bfloat16 (training.device)" in plan.target["described"]


def test_a_configured_batch_that_does_not_fit_is_a_finding(llama_8b: Path, tmp_path: Path) -> None:
    plan = plan_for(llama_8b, tmp_path, device="a10g", batch_size=64)
    assert plan.hparams.batch_size == 64  # the user's value is kept, and spoken of
    (finding,) = [f for f in plan.guardrails if f.check == "batch_over_memory"]
    assert "training.batch_size 64 is predicted to need" in finding.message
    assert "training.batch_size: 4 with gradient_accumulation_steps: 16" in finding.fix


def test_80_gb_batch_phase_tries_batches_above_the_incoming_one(
    llama_8b: Path, tmp_path: Path
) -> None:
    plan = plan_for(llama_8b, tmp_path, device="a100-80gb")
    assert (plan.hparams.batch_size, plan.hparams.gradient_accumulation_steps) == (16, 1)
    # powers of two above the incoming 16, and the exact largest predicted to fit
    assert [(r["batch_size"], r["fits"]) for r in plan.memory if r["batch_size"] > 16] == [
        (32, True), (48, True)]  # fmt: skip
    assert plan.memory[-1]["predicted_gb"] <= 80 * 0.9
    # with gradient checkpointing far more fits: up to the cap of 8 steps an epoch (800 / 8)
    plan = plan_for(llama_8b, tmp_path, device="a100-80gb", gradient_checkpointing=True)
    assert [r["batch_size"] for r in plan.memory if r["batch_size"] > 16] == [32, 64]
    assert all(r["fits"] for r in plan.memory)


@pytest.mark.parametrize(
    ("device", "dtype"), [("a100-80gb", "bfloat16"), ("t4", "float16"), ("cpu", "float32")]
)
def test_the_dtype_assumed_is_the_targets_and_shown(
    llama_8b: Path, tmp_path: Path, device: str, dtype: str
) -> None:
    from hptune.train.target import resolve_target

    raw = {"name": "x", "model": {"path": str(llama_8b)}, "training": {"device": device},
           "data": {"train": str(llama_8b / "train.jsonl"),
                    "validation": str(llama_8b / "validation.jsonl")}}  # fmt: skip
    config = config_from_dict(raw)
    assert resolve_target(config).dtype(config.model) == dtype


def test_bf16_halves_the_weights_of_an_8b_model(llama_8b: Path) -> None:
    from hptune.config import MethodConfig, ModelConfig
    from hptune.train.memory import MemoryModel

    model, method = ModelConfig(path=str(llama_8b)), MethodConfig()
    bf16 = MemoryModel.for_model(model, method, sequence_length=128, dtype="bfloat16")
    fp32 = MemoryModel.for_model(model, method, sequence_length=128, dtype="float32")
    assert 14.5 < bf16.weights / 2**30 < 15.5  # 8.03B parameters x 2 bytes
    assert fp32.weights == 2 * bf16.weights


def test_qlora_is_planned_on_a_machine_without_cuda(llama_8b: Path, tmp_path: Path) -> None:
    import torch

    assert not torch.cuda.is_available()  # this test plans for a GPU from a CPU
    plan = plan_for(llama_8b, tmp_path, device="t4", method="qlora")
    memory = {row["batch_size"]: row for row in plan.memory}
    assert 4 < memory[1]["predicted_gb"] < 8  # a 4-bit 8B base: ~4.4 GB of weights
    assert plan.hparams.learning_rate == 2e-4
    assert "t4, 16 GiB, float16" in plan.target["described"]


def test_an_unknown_device_is_a_clear_error() -> None:
    from hptune.exceptions import ConfigError

    with pytest.raises(ConfigError, match="unknown device 'a100'; use cpu, cuda"):
        config_from_dict({"name": "x", "model": {"path": "demo://model"},
                          "data": {"train": "demo://data/train.jsonl",
                                   "validation": "demo://data/validation.jsonl"},
                          "training": {"device": "a100"}})  # fmt: skip


@pytest.mark.parametrize(
    ("name", "tflops"),
    [("NVIDIA L40S", 362), ("NVIDIA GeForce RTX 4090", 165), ("Tesla T4", 65),
     ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA H100 80GB HBM3", 989), ("NVIDIA A10G", 70),
     ("Some Future GPU", None), ("NVIDIA L40", None), ("NVIDIA L4", 121)],
)  # fmt: skip
def test_this_machines_gpu_is_found_by_its_longest_model_name(name: str, tflops) -> None:
    from hptune.train.target import _known_tflops

    assert _known_tflops(name) == tflops


def test_a_situation_preset_describes_the_target(llama_8b: Path) -> None:
    from hptune.train.target import resolve_target

    raw = {"name": "x", "model": {"path": str(llama_8b)}, "training": {"situation": "colab_free"},
           "data": {"train": str(llama_8b / "train.jsonl"),
                    "validation": str(llama_8b / "validation.jsonl")}}  # fmt: skip
    target = resolve_target(config_from_dict(raw))
    assert (target.name, target.memory_gb, target.bf16) == ("t4", 12, False)
    assert target.source == "training.situation"
