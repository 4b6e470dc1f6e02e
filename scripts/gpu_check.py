"""One prepared GPU check: hptune's memory model against the peak memory torch measures, for
Llama-shaped models built from their configuration's shapes (random weights: nothing is
downloaded), and the largest batch it fits against the largest that ran.

    bash scripts/gpu_check.sh [--dry] [--out FILE.json]

Each section is appended to the JSON file as soon as it is done, so a run cut off by its
time limit still returns what it measured. ``--dry`` (or no CUDA) runs the same code on the
CPU with a 2-layer model of the same family: predictions only, every measurement null; it
runs in the test suite so that the script cannot rot.

Sections: ``environment``; ``memory/<model>/<variant>`` (LoRA r 8 on all linear layers,
bfloat16, with and without gradient checkpointing; QLoRA 4-bit where bitsandbytes imports):
per batch, the predicted and measured peak and their ratio, the largest batch the memory
model fits in 90% of the GPU and the largest that ran. ``throughput/<model>`` (LoRA on the
demo's data, the model's shapes with the demo tokenizer's vocabulary): tokens per second of
hptune's loop and of the Trainer backend for one seed, and seed-epochs per second of three
seeds one after the other and together (``training.seeds_together``), with the largest
relative difference of a seed's validation loss between the two; then three rates x three
seeds as one stack of nine adapters (``training.candidates_together``): seed-epochs per
second, its ratio to seeds together and to in turn, and the first rate's seeds' largest
relative difference from their runs alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

#: Llama 3.2 1B and Llama 3.1 8B shapes (their config.json), with random weights.
SHAPES = {
    "llama-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256},
    "llama-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256},
}  # fmt: skip
DRY_SHAPES = {"llama-tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                             "num_attention_heads": 4, "num_key_value_heads": 2,
                             "vocab_size": 512}}  # fmt: skip
SEQUENCE, BATCHES = 512, [1, 2, 4, 8, 16, 32]
DRY_SEQUENCE, DRY_BATCHES = 32, [1, 2]


def _append(out: Path, key: str, value: Any) -> None:
    data = json.loads(out.read_text()) if out.exists() else {}
    data[key] = value
    out.write_text(json.dumps(data, indent=2) + "\n")


def _environment(dry: bool) -> dict[str, Any]:
    import torch
    import transformers

    from hptune import __version__

    cuda = torch.cuda.is_available() and not dry
    return {
        "dry": not cuda,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "hptune": __version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "memory_bytes": torch.cuda.get_device_properties(0).total_memory if cuda else None,
    }


def _variants(dry: bool) -> list[tuple[str, str, bool]]:
    variants = [("lora-bf16", "lora", False), ("lora-bf16-checkpointing", "lora", True)]
    try:
        import bitsandbytes  # noqa: F401

        if not dry:
            variants.append(("qlora-4bit", "qlora", False))
    except ImportError:
        pass
    return variants


def _memory(name: str, shape: dict[str, int], variant: tuple[str, str, bool], folder: Path,
            environment: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    import torch
    from transformers import LlamaConfig

    from hptune.config._sections import MethodConfig, ModelConfig
    from hptune.train.memory import MemoryModel, probe_peak_memory

    _, method_type, checkpointing = variant
    dry = environment["dry"]
    sequence, batches = (DRY_SEQUENCE, DRY_BATCHES) if dry else (SEQUENCE, BATCHES)
    directory = folder / name
    LlamaConfig(**shape, max_position_embeddings=4096).save_pretrained(directory)
    model = ModelConfig(path=str(directory), dtype="bfloat16")
    method = MethodConfig(type=method_type, r=8, alpha=16, target_modules="all-linear")
    estimate = MemoryModel.for_model(
        model,
        method,
        sequence_length=sequence,
        gradient_checkpointing=checkpointing,
        dtype="bfloat16",
    )
    predicted = {b: estimate.predict(b) for b in batches}
    measured: dict[int, float] = {}
    started = time.perf_counter()
    if not dry:
        network = _build(directory, method_type, checkpointing)

        def batch_of(b: int) -> dict[str, Any]:
            ids = torch.randint(0, shape["vocab_size"], (b, sequence))
            return {"input_ids": ids, "labels": ids}

        measured = probe_peak_memory(network, batch_of, batches)
        del network
        torch.cuda.empty_cache()
    limit = environment["memory_bytes"]
    return {
        "sequence_length": sequence,
        "batches": [
            {
                "batch_size": b,
                "predicted_bytes": round(predicted[b]),
                "measured_bytes": measured.get(b),
                "ratio": None if b not in measured else round(predicted[b] / measured[b], 4),
            }
            for b in batches
        ],
        "largest_predicted_to_fit": None
        if limit is None
        else estimate.largest_batch(0.9 * limit, batches),
        "largest_that_ran": max(measured) if measured else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _throughput(name: str, shape: dict[str, int], folder: Path,
                environment: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """hptune's loop against the Trainer (one seed), and three seeds in turn against
    together, on the demo's data with the model's shapes (random weights)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from hptune.config import config_from_dict
    from hptune.demo import ensure_demo
    from hptune.hparams import HParams
    from hptune.train import Runner
    from hptune.train.together import train_together
    from hptune.train.trainer import TrainerRunner

    dry = environment["dry"]
    dtype = "float32" if dry else "bfloat16"
    tokenizer = AutoTokenizer.from_pretrained(ensure_demo() / "model")
    directory = folder / f"{name}-weights"
    torch.manual_seed(0)
    config = LlamaConfig(**{**shape, "vocab_size": len(tokenizer)}, max_position_embeddings=4096)
    AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    raw = {
        "model": {"path": str(directory), "dtype": dtype},
        "method": {"type": "lora", "target_modules": "all-linear", "dropout": 0.0},
        "data": {"train": "demo://data/train.jsonl", "validation": "demo://data/validation.jsonl",
                 "template": "Question: {question}\nAnswer: ", "response_field": "answer"},
        "objective": {"seeds": 3},
        "training": {"max_train_examples": 32 if dry else 512, "checkpoints": False,
                     "max_validation_examples": 16 if dry else 64, "seeds_together": True},
        "output_dir": str(folder / f"{name}-out"),
    }  # fmt: skip
    hp = HParams(learning_rate=1e-4, batch_size=8, gradient_accumulation_steps=1, epochs=1,
                 warmup_ratio=0.0, weight_decay=0.0)  # fmt: skip
    runner = Runner(config_from_dict(raw))
    runner.train(hp, 0)  # untimed: the base loaded, the starting loss measured once
    loop = runner.train(hp, 0)
    by_trainer_config = {**raw["training"], "backend": "trainer", "seeds_together": False}
    trainer = TrainerRunner(config_from_dict({**raw, "training": by_trainer_config}))
    trainer.train(hp, 0)
    by_trainer = trainer.train(hp, 0)
    seeds = [0, 1, 2]
    started = time.perf_counter()
    alone = [runner.train(hp, s) for s in seeds]
    sequential = time.perf_counter() - started
    started = time.perf_counter()
    stacked = train_together(runner, hp, seeds, [None] * 3)
    together = time.perf_counter() - started
    diff = _largest_difference(alone, stacked)
    return {
        "examples": runner.data.n_train,
        "batch_size": hp.batch_size,
        "loop_tokens_per_second": round(loop.tokens_per_second, 1),
        "trainer_tokens_per_second": round(by_trainer.tokens_per_second, 1),
        "trainer_over_loop": round(by_trainer.tokens_per_second / loop.tokens_per_second, 3),
        "seed_epochs_per_second_in_turn": round(len(seeds) / sequential, 4),
        "seed_epochs_per_second_together": round(len(seeds) / together, 4),
        "together_over_in_turn": round(sequential / together, 3),
        "max_relative_difference": diff,
        **_candidates(runner, hp, alone, sequential, together),
    }


def _largest_difference(alone: list[Any], other: list[Any]) -> float:
    """The largest relative difference of a seed's last validation loss from its run alone."""
    return max(abs(a.epochs[-1].eval_loss - b.epochs[-1].eval_loss) / abs(a.epochs[-1].eval_loss)
               for a, b in zip(alone, other, strict=True))  # fmt: skip


def _candidates(
    runner: Any, hp: Any, alone: list[Any], in_turn: float, seeds_together: float
) -> dict[str, Any]:
    """Three rates x three seeds as one stack of nine adapters (candidates together), against
    each rate's seeds together (``seeds_together``: one rate's seconds, the other two rates
    taken to cost the same) and in turn (``in_turn``, alike); the first rate's seeds against
    their runs alone."""
    from hptune.train.together import Member, train_group

    rates = [hp.learning_rate, 2 * hp.learning_rate, 5 * hp.learning_rate]
    members = [Member(hp.replace(learning_rate=r), [0, 1, 2], [None] * 3) for r in rates]
    started = time.perf_counter()
    grouped = train_group(runner, members)
    seconds = time.perf_counter() - started
    return {
        "candidates_adapters": len(rates) * 3,
        "seed_epochs_per_second_candidates_together": round(len(rates) * 3 / seconds, 4),
        "candidates_over_seeds_together": round(len(rates) * seeds_together / seconds, 3),
        "candidates_over_in_turn": round(len(rates) * in_turn / seconds, 3),
        "candidates_max_relative_difference": _largest_difference(alone, grouped[0]),
    }


def _build(directory: Path, method_type: str, checkpointing: bool) -> Any:
    """The model on the GPU with random weights: LoRA on a bfloat16 base, or on a 4-bit one."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig

    config = AutoConfig.from_pretrained(directory)
    if method_type == "qlora":  # 4-bit loading reads weights: save random ones first
        AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(directory)
        quantized = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                       bnb_4bit_compute_dtype=torch.bfloat16)  # fmt: skip
        base = AutoModelForCausalLM.from_pretrained(directory, quantization_config=quantized,
                                                    device_map={"": 0})  # fmt: skip
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=checkpointing)
    else:
        with torch.device("cuda"):
            base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        if checkpointing:
            base.gradient_checkpointing_enable()
            base.enable_input_require_grads()
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(base, lora)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="no GPU: predictions only")
    parser.add_argument("--out", default="gpu_check.json", help="the JSON file appended to")
    args = parser.parse_args()
    out = Path(args.out)
    out.unlink(missing_ok=True)
    environment = _environment(args.dry)
    _append(out, "environment", environment)
    shapes = DRY_SHAPES if environment["dry"] else SHAPES
    with tempfile.TemporaryDirectory(prefix="hptune-gpu-check-") as folder:
        for name, shape in shapes.items():
            for variant in _variants(environment["dry"]):
                key = f"memory/{name}/{variant[0]}"
                try:
                    _append(out, key, _memory(name, shape, variant, Path(folder), environment))
                except Exception as exc:  # a section that fails is said; the next one runs
                    _append(out, key, {"error": f"{type(exc).__name__}: {exc}"[:500]})
                print(key, "done", flush=True)
        for name, shape in shapes.items():
            key = f"throughput/{name}"
            try:
                _append(out, key, _throughput(name, shape, Path(folder), environment))
            except Exception as exc:  # said, as a memory section's failure is
                _append(out, key, {"error": f"{type(exc).__name__}: {exc}"[:500]})
            print(key, "done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
