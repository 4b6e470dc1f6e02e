"""Training throughput (tokens/s) of hptune's loop, its ``trainer`` and ``sft`` backends
(each seed a real ``Trainer`` / TRL ``SFTTrainer``), a bare Accelerate loop and a plain
Hugging Face ``Trainer``, on the same LoRA job (the demo model and data, same batch, same
steps), measured in the same run and in alternating order, so the machine's state is shared.

    .venv/bin/python benchmarks/loop_throughput.py [--repeats 3] [--examples 512] [--quick]

Each figure counts the non-padding tokens of the training batches over the time spent in
training steps (hptune's loop excludes its per-epoch validation the same way; Trainer's
``train_runtime`` covers its training loop; no evaluation, logging or saving is configured).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from hptune.config import load_config
from hptune.hparams import HParams
from hptune.train import Runner
from hptune.train.model import load_model

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
BATCH, LR = 16, 5e-3


def _tokens(dataset: Any) -> int:
    return sum(sum(mask) for mask in dataset["attention_mask"])


def _warm_up(model: Any, runner: Runner, collate: Any, device: Any = None) -> None:
    """One forward pass before timing, as hptune's loop does (its pre-training validation),
    so no loop is charged for first-call setup the others skip."""
    import torch

    batch = collate([runner.data.validation[i] for i in range(BATCH)])
    with torch.no_grad():
        model(**{k: v.to(device or model.device) for k, v in batch.items()})


def run_hptune(runner: Any, _: Any) -> float:
    hp = HParams(LR, BATCH, 1, 1, 0.0, 0.0, scheduler="constant")
    result = runner.train(hp, seed=0)
    return result.tokens_per_second


def _backend(config: Any, backend: str) -> Any:
    from hptune.train import make_runner

    training = config.training.model_copy(update={"backend": backend})
    return make_runner(config.model_copy(update={"training": training}))


def run_accelerate(runner: Runner, collate: Any) -> float:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(0)
    model = load_model(runner.config.model, runner.config.method)
    loader = DataLoader(runner.data.train, batch_size=BATCH, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    _warm_up(model, runner, collate, accelerator.device)
    model.train()
    tokens, start = 0, time.perf_counter()
    for batch in loader:
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)  # as hptune and Trainer do
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - start)


def run_trainer(runner: Runner, collate: Any) -> float:
    import torch
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    model = load_model(runner.config.model, runner.config.method)
    _warm_up(model, runner, collate)
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="hptune-bench-trainer-"),
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        num_train_epochs=1,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=runner.data.train, data_collator=collate
    )
    metrics = trainer.train().metrics
    return _tokens(runner.data.train) / metrics["train_runtime"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="64 examples, 1 repeat")
    parser.add_argument("--loops", nargs="+", help="only these (hptune, accelerate, trainer)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.examples = 1, 64
    from transformers import DataCollatorForSeq2Seq

    raw = yaml.safe_load(DEMO.read_text())
    raw["training"]["max_train_examples"] = args.examples
    raw["objective"]["eval_samples"] = 1  # generation is outside the timed training steps
    raw["training"]["checkpoints"] = False
    path = Path(tempfile.mkdtemp(prefix="hptune-bench-loop-")) / "bench.yaml"
    raw["output_dir"] = str(path.parent / "out")
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    runner = Runner(config)
    runners = {"hptune": runner, "hptune trainer": _backend(config, "trainer"),
               "hptune sft": _backend(config, "sft")}  # fmt: skip
    collate = DataCollatorForSeq2Seq(runner.tokenizer, padding=True, label_pad_token_id=-100)
    loops = {"hptune": run_hptune, "hptune trainer": run_hptune, "hptune sft": run_hptune,
             "accelerate (bare)": run_accelerate, "Trainer": run_trainer}  # fmt: skip
    if args.loops:
        loops = {k: v for k, v in loops.items() if k.split()[0].lower() in args.loops}
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeats):  # alternate, so drifts in the machine hit all alike
        for name, loop in loops.items():
            rates[name].append(loop(runners.get(name, runner), collate))
    print(f"LoRA on the demo model, {args.examples} examples, batch {BATCH}, {args.repeats} "
          "repeat(s); tokens/s, median (min-max), ratio to bare Accelerate and to hptune's "
          "loop")  # fmt: skip
    bare = statistics.median(rates["accelerate (bare)"]) if "accelerate (bare)" in rates else 0
    ours = statistics.median(rates["hptune"]) if "hptune" in rates else 0
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<20} {median:>9.0f} ({min(values):.0f}-{max(values):.0f})  "
              f"{median / bare if bare else math.nan:5.2f}x  "
              f"{median / ours if ours else math.nan:5.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
