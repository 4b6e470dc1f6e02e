"""Seeds together (prototype): one epoch of K seeds' LoRA adapters trained one after the other
(peft, as hptune trains them today) against the same K adapters stacked over one frozen base
(``hptune.train.stacked_lora``: one forward and backward per step over the K sub-batches).

Both start each seed from the same adapter (peft's initialisation, seeded) and read each
seed's own data order, without dropout, so each seed's validation loss after the epoch should
agree, as far as float rounding lets them: training amplifies it, so the table also shows
how far the sequential runs themselves move when their starting adapters change by 1e-7
(relative). The figure of interest is seed-epochs per second.

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
R, ALPHA, RATE, BATCH, CLIP = 8, 16, 3e-3, 4, 1.0


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
            torch.nn.utils.clip_grad_norm_(trained, CLIP)
            optimizer.step()
            optimizer.zero_grad()
        seconds += time.perf_counter() - start
        validation = _loader(runner.data.validation, collate, 0, shuffle=False)
        losses.append(_eval(model, validation, 1)[0])
    return seconds, losses


def together(runner: Any, model_dir: str, adapters: list[dict[str, Any]]) -> tuple[float, list]:
    import torch
    from transformers import AutoModelForCausalLM

    from hptune.train.stacked_lora import (
        clip_per_seed,
        seed_losses,
        stack_adapters,
        stacked_batch,  # fmt: skip
    )

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
        clip_per_seed(trained, CLIP)
        optimizer.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    validation = _loader(runner.data.validation, collate, 0, shuffle=False)
    return seconds, _eval(model, validation, k)


def main() -> None:
    global RATE
    import warnings

    from transformers.utils import logging

    logging.disable_progress_bar()  # "Loading weights" once per model built
    warnings.filterwarnings("ignore", category=UserWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 examples, K = 1 and 2")
    parser.add_argument("--larger", action="store_true", help="the 22M model (hidden 512)")
    parser.add_argument("--rate", type=float, default=3e-3, help="the learning rate")
    parser.add_argument("--repeats", type=int, default=3, help="timings per K (the fastest)")
    parser.add_argument("--seeds", type=int, nargs="+", help="the Ks to time (default 1 3 5)")
    args = parser.parse_args()
    RATE = args.rate
    runner = _data(64 if args.quick else 512)
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
          f"no dropout, rate {RATE:g}, gradients clipped to {CLIP:g} per seed; seed-epochs "
          f"per second (the fastest of {1 if args.quick else args.repeats})")  # fmt: skip
    print(f"{'K':>3} {'sequential':>11} {'together':>9} {'ratio':>6} {'max rel. diff':>14} "
          f"{'1e-7 nudged':>12}")  # fmt: skip
    for k in args.seeds or ((1, 2) if args.quick else (1, 3, 5)):
        adapters = _initial_adapters(model_dir, k)
        repeats = 1 if args.quick else args.repeats
        seq = [sequential(runner, model_dir, adapters) for _ in range(repeats)]
        tog = [together(runner, model_dir, adapters) for _ in range(repeats)]
        seq_seconds, seq_losses = min(s for s, _ in seq), seq[0][1]
        tog_seconds, tog_losses = min(s for s, _ in tog), tog[0][1]
        diff = max(abs(a - b) / abs(a) for a, b in zip(seq_losses, tog_losses, strict=True))
        # The same sequential runs from adapters changed by 1e-7 (relative): how far float
        # rounding alone carries an epoch's training apart, the scale to read diff against.
        nudged = [{n: t * (1 + 1e-7) for n, t in a.items()} for a in adapters]
        floor_losses = sequential(runner, model_dir, nudged)[1]
        floor = max(abs(a - b) / abs(a) for a, b in zip(seq_losses, floor_losses, strict=True))
        seq_rate, tog_rate = k / seq_seconds, k / tog_seconds
        print(f"{k:>3} {seq_rate:>11.3f} {tog_rate:>9.3f} {tog_rate / seq_rate:>5.2f}x "
              f"{diff:>14.2e} {floor:>12.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
