"""Seeds together (prototype): one epoch of K seeds' LoRA adapters trained one after the other
(peft, as hptune trains them today) against the same K adapters stacked over one frozen base
(``hptune.train.stacked_lora``: one forward and backward per step over the K sub-batches).

Both start each seed from the same adapter (peft's initialisation, seeded) and read each
seed's own data order, without dropout, so each seed's validation loss after the epoch should
agree; the figure of interest is seed-epochs per second.

    .venv/bin/python benchmarks/seeds_together.py [--quick] [--larger]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
R, ALPHA, RATE, BATCH = 8, 16, 1e-2, 4


def _data(examples: int) -> Any:
    from hptune.config import load_config
    from hptune.train import make_runner

    raw = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    raw["training"].update(max_train_examples=examples, max_validation_examples=64)
    raw["output_dir"] = tempfile.mkdtemp(prefix="hptune-bench-together-")
    raw["guardrails"] = {"ignore": ["high_learning_rate"]}
    path = Path(raw["output_dir"]) / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return make_runner(load_config(path))


def _loader(data: Any, collate: Any, seed: int, *, shuffle: bool = True) -> Any:
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=BATCH, shuffle=shuffle, generator=generator,
                      collate_fn=collate)  # fmt: skip


def _initial_adapters(model_dir: str, k: int) -> list[dict[str, Any]]:
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    adapters = []
    for seed in range(k):
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        torch.manual_seed(seed)
        model = get_peft_model(base, LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0,
                                                target_modules="all-linear"))  # fmt: skip
        adapters.append({n: t.clone() for n, t in get_peft_model_state_dict(model).items()})
    return adapters


def _eval(model: Any, loader: Any, k: int) -> list[float]:
    import torch

    from hptune.train.stacked_lora import seed_losses, stacked_batch

    totals = [0.0] * k
    n = 0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            stacked = stacked_batch([batch] * k, 0)
            logits = model(input_ids=stacked["input_ids"],
                           attention_mask=stacked["attention_mask"]).logits  # fmt: skip
            losses = seed_losses(logits, stacked["labels"], k)
            totals = [t + float(x) for t, x in zip(totals, losses, strict=True)]
            n += 1
    model.train()
    return [t / n for t in totals]


def sequential(runner: Any, model_dir: str, adapters: list[dict[str, Any]]) -> tuple[float, list]:
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    from hptune.train.stacked_lora import seed_losses

    collate = runner.collator()
    seconds, losses = 0.0, []
    for seed, adapter in enumerate(adapters):
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        model = get_peft_model(base, LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0,
                                                target_modules="all-linear"))  # fmt: skip
        set_peft_model_state_dict(model, adapter)
        trained = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trained, lr=RATE, weight_decay=0.0)
        start = time.perf_counter()
        for batch in _loader(runner.data.train, collate, seed):
            logits = model(input_ids=batch["input_ids"],
                           attention_mask=batch["attention_mask"]).logits  # fmt: skip
            seed_losses(logits, batch["labels"], 1).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        seconds += time.perf_counter() - start
        validation = _loader(runner.data.validation, collate, 0, shuffle=False)
        losses.append(_eval(model, validation, 1)[0])
    return seconds, losses


def together(runner: Any, model_dir: str, adapters: list[dict[str, Any]]) -> tuple[float, list]:
    import torch
    from transformers import AutoModelForCausalLM

    from hptune.train.stacked_lora import seed_losses, stack_adapters, stacked_batch

    collate, k = runner.collator(), len(adapters)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    stack_adapters(model, adapters, ALPHA / R)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=RATE, weight_decay=0.0)
    pad = runner.tokenizer.pad_token_id
    loaders = [_loader(runner.data.train, collate, seed) for seed in range(k)]
    start = time.perf_counter()
    for batches in zip(*loaders, strict=True):
        stacked = stacked_batch(list(batches), pad)
        logits = model(input_ids=stacked["input_ids"],
                       attention_mask=stacked["attention_mask"]).logits  # fmt: skip
        seed_losses(logits, stacked["labels"], k).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    validation = _loader(runner.data.validation, collate, 0, shuffle=False)
    return seconds, _eval(model, validation, k)


def main() -> None:
    import warnings

    from transformers.utils import logging

    logging.disable_progress_bar()  # "Loading weights" once per model built
    warnings.filterwarnings("ignore", category=UserWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 examples, K = 1 and 2")
    parser.add_argument("--larger", action="store_true", help="the 22M model (hidden 512)")
    args = parser.parse_args()
    runner = _data(64 if args.quick else 256)
    model_dir = str(runner.config.model.path)
    from hptune.demo import resolve_demo_path

    model_dir = resolve_demo_path(model_dir)
    name = "demo"
    if args.larger:
        import sys

        sys.path.insert(0, str(ROOT / "benchmarks"))
        from trial_overhead import _larger_model

        name, model_dir = _larger_model(Path(tempfile.mkdtemp(prefix="hptune-larger-")))
    examples = runner.data.n_train
    print(f"{name}: one epoch of {examples} examples, batch {BATCH}, LoRA r {R} all-linear, "
          "no dropout; seed-epochs per second")  # fmt: skip
    print(f"{'K':>3} {'sequential':>11} {'together':>9} {'ratio':>6} {'max rel. diff':>14}")
    for k in (1, 2) if args.quick else (1, 3, 5):
        adapters = _initial_adapters(model_dir, k)
        seq_seconds, seq_losses = sequential(runner, model_dir, adapters)
        tog_seconds, tog_losses = together(runner, model_dir, adapters)
        diff = max(abs(a - b) / abs(a) for a, b in zip(seq_losses, tog_losses, strict=True))
        seq_rate, tog_rate = k / seq_seconds, k / tog_seconds
        print(f"{k:>3} {seq_rate:>11.3f} {tog_rate:>9.3f} {tog_rate / seq_rate:>5.2f}x "
              f"{diff:>14.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
