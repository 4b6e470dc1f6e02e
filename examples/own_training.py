"""Tune your own training: hptune calls your code for each seed of each trial.

Two ways, both run here on the demo's model and data:

- ``train(run)``: your own loop. It trains ``run.hparams`` with ``run.seed`` and calls
  ``run.report(epoch, model=model)`` after each epoch; when that returns False (the trial was
  pruned, or the seed stopped early), it stops.
- ``make_trainer(run)``: your own ``transformers.Trainer``, built with
  ``run.training_arguments(...)`` (which carries the values being tuned); hptune adds its
  callback, trains it and measures each epoch.

- ``make_sft_trainer(run)``: your own TRL ``SFTTrainer`` on your own prompt-completion
  records, built with ``run.training_arguments(SFTConfig, ...)``; TRL masks the prompt.

Run ``python examples/own_training.py train`` (or ``trainer``, or ``sft``).
From the command line, ``examples/own_training.yaml`` names ``own_training:train`` as its
``training.train_fn``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import hptune


def train(run: hptune.TrialRun) -> None:
    """A plain PyTorch loop: gradient accumulation, clipping, a warmed-up schedule."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import DataCollatorForSeq2Seq, get_scheduler

    hp = run.hparams
    model = run.model()  # the configured model with a fresh LoRA adapter, seeded
    loader = DataLoader(
        run.data.train,
        batch_size=hp.batch_size,
        shuffle=True,
        collate_fn=DataCollatorForSeq2Seq(run.tokenizer, label_pad_token_id=-100),
        generator=torch.Generator().manual_seed(run.seed),  # the seed fixes the data order
    )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=hp.learning_rate,
        weight_decay=hp.weight_decay,
    )
    steps = math.ceil(len(loader) / hp.gradient_accumulation_steps) * hp.epochs
    scheduler = get_scheduler(
        hp.scheduler,
        optimizer=optimizer,
        num_warmup_steps=math.ceil(hp.warmup_ratio * steps),
        num_training_steps=steps,
    )
    for epoch in range(1, hp.epochs + 1):
        model.train()
        for index, batch in enumerate(loader):
            loss = model(**batch).loss / hp.gradient_accumulation_steps
            loss.backward()
            if (index + 1) % hp.gradient_accumulation_steps == 0 or index + 1 == len(loader):
                if hp.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        # hptune measures the validation split (the same way for every trial) and decides
        if not run.report(epoch, model=model, learning_rate=scheduler.get_last_lr()[0]):
            return


def make_trainer(run: hptune.TrialRun):
    """Your own Trainer, with your own keys beside the tuned ones."""
    from transformers import DataCollatorForSeq2Seq, Trainer

    args = run.training_arguments(logging_strategy="no", save_strategy="no")
    return Trainer(
        model=run.model(),
        args=args,
        train_dataset=run.data.train,
        data_collator=DataCollatorForSeq2Seq(run.tokenizer, label_pad_token_id=-100),
        processing_class=run.tokenizer,
    )


def make_sft_trainer(run: hptune.TrialRun):
    """Your own TRL SFTTrainer on your own records: TRL tokenizes the prompt-completion
    pairs and masks the prompt (only the completion carries the loss), as your script does.
    hptune scores every trial on its own validation, the same for any backend."""
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from hptune.demo import resolve_demo_path

    records = load_dataset("json", data_files=resolve_demo_path("demo://data/train.jsonl"),
                           split="train").select(range(256))  # fmt: skip
    records = records.map(
        lambda r: {"prompt": f"Question: {r['question']}\nAnswer: ", "completion": r["answer"]},
        remove_columns=records.column_names,
    )
    args = run.training_arguments(
        SFTConfig, completion_only_loss=True, max_length=96, packing=False, save_strategy="no"
    )
    return SFTTrainer(model=run.model(), args=args, train_dataset=records,
                      processing_class=run.tokenizer)  # fmt: skip


config = hptune.TuneConfig(
    name="own_training",
    model={"path": "demo://model"},
    method={"type": "lora", "r": 8, "alpha": 16, "target_modules": "all-linear"},
    data={
        "train": "demo://data/train.jsonl",
        "validation": "demo://data/validation.jsonl",
        "template": "Question: {question}\nAnswer: ",
        "max_length": 96,
    },
    objective={"metric": "eval_loss", "seeds": 2},
    # tiny model: the LoRA preset and grid x100, as in demo.yaml
    training={"learning_rate": 1e-2, "batch_size": 8, "epochs": 2, "max_train_examples": 256},
    phases={"run": ["baseline", "learning_rate"], "learning_rate": {"grid": [5e-3, 1e-2, 5e-2]}},
    guardrails={"ignore": ["high_learning_rate"]},
    output_dir=str(Path(__file__).resolve().parent.parent / "hptune-output" / "own_training"),
)

if __name__ == "__main__":
    how = sys.argv[1] if len(sys.argv) > 1 else "train"
    hooks = {"train": {"train_fn": train}, "trainer": {"trainer_factory": make_trainer},
             "sft": {"trainer_factory": make_sft_trainer}}[how]  # fmt: skip
    named = config.model_copy(update={"name": f"own_training_{how}"})
    result = hptune.run(named, **hooks)
    print("chosen configuration:", result.hparams.to_dict())
    for phase in result.phases:
        print(f"{phase.phase}: {phase.decision.case}: {phase.decision.reason}")
