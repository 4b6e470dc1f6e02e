"""What hptune's loop trains with, one seed at a time or a trial's seeds together: the
Accelerator, AdamW as the Trainer builds it, the schedule, and the rules of an optimizer step
(its accumulation window, the tokens it predicts).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hptune._lazy import accelerate, peft_optimizers, torch, transformers
from hptune.hparams import HParams
from hptune.train.arguments import default_optimizer, mixed_precision, scheduler_kwargs

__all__ = [
    "accepts_loss_kwargs",
    "adamw_over",
    "build_adamw",
    "build_scheduler",
    "decay_parameter_names",
    "make_accelerator",
    "targets",
    "windows",
]


def make_accelerator(trackers: Sequence[str] | None = None, logs: Path | None = None) -> Any:
    """The Accelerator of a run: this machine's mixed precision, on the CPU without CUDA.

    Accumulation is done by the loop, as the Trainer does it (one window of batches, one
    loss over its tokens), so Accelerate is told there is none.

    Args:
        trackers: The trackers to log to (``training.report_to``); None: none.
        logs: Where the trackers write.

    Returns:
        An ``accelerate.Accelerator``.
    """
    accelerator = accelerate.Accelerator(
        mixed_precision=mixed_precision(),
        cpu=not torch.cuda.is_available(),
        log_with=list(trackers) if trackers else None,
        project_dir=str(logs) if trackers else None,
    )
    # Accelerate's GradientState is shared by the process: a Trainer run stopped inside an
    # accumulation window (diverged, interrupted) leaves it "not syncing", and the prepared
    # optimizer would then skip every step. This loop accumulates itself.
    accelerator.gradient_state.sync_gradients = True
    return accelerator


def build_scheduler(optimizer: Any, hp: HParams, batches: int, args: dict[str, Any]) -> Any:
    """The learning-rate schedule of ``hp`` over its epochs of ``batches`` batches each, as
    the Trainer builds it: one step per update (not prepared, which would step it once per
    process), the warmup ``TrainingArguments.get_warmup_steps``'s ceiling.

    Args:
        optimizer: The run's optimizer.
        hp: The run's hyperparameters.
        batches: This process's batches of one epoch.
        args: The run's ``training.args`` (its ``lr_scheduler_kwargs``).

    Returns:
        transformers' scheduler.
    """
    steps = math.ceil(batches / hp.gradient_accumulation_steps) * hp.epochs
    return transformers.get_scheduler(
        hp.scheduler,
        optimizer=optimizer,
        num_warmup_steps=math.ceil(hp.warmup_ratio * steps),
        num_training_steps=steps,
        scheduler_specific_kwargs=scheduler_kwargs(hp.scheduler, args.get("lr_scheduler_kwargs")),
    )


def decay_parameter_names(model: Any) -> list[str]:
    """The parameters weight decay applies to: not biases, nor normalisation weights."""
    # transformers' own rule, so both backends decay the same parameters; it reads nothing
    # of the Trainer instance, so it is called without one.
    return list(transformers.Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]


def accepts_loss_kwargs(model: Any) -> bool:
    """Whether the model's forward takes ``num_items_in_batch`` (the Trainer's own test, on
    the model under a peft adapter)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(base, "accepts_loss_kwargs"):
        return bool(base.accepts_loss_kwargs)
    parameters = inspect.signature(base.forward).parameters.values()
    return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)


def build_adamw(
    model: Any,
    hp: HParams,
    optim: str | None,
    args: dict[str, Any],
    loraplus_lr_ratio: float | None = None,
) -> Any:
    """AdamW as the Trainer builds it for ``optim``.

    Args:
        model: The model whose trainable parameters it steps.
        hp: The run's learning rate and weight decay.
        optim: ``adamw_torch`` or ``adamw_torch_fused`` (None: the Trainer's default).
        args: ``training.args``: its betas and epsilon (the Trainer's defaults otherwise).
        loraplus_lr_ratio: peft's LoRA+ groups, B matrices at that many times the rate.

    Returns:
        A ``torch.optim.AdamW``.
    """
    options = _adamw_options(optim, args)
    if loraplus_lr_ratio:
        return peft_optimizers.create_loraplus_optimizer(
            model,
            torch.optim.AdamW,
            lr=hp.learning_rate,
            loraplus_lr_ratio=loraplus_lr_ratio,
            loraplus_weight_decay=hp.weight_decay,
            **options,
        )
    decay = set(decay_parameter_names(model))
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if n in decay], "weight_decay": hp.weight_decay},
        {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0},
    ]
    # The Trainer's default optimizer ("adamw_torch_fused" on torch >= 2.8).
    return torch.optim.AdamW(groups, lr=hp.learning_rate, **options)


def adamw_over(parameters: list[Any], hp: HParams, optim: str | None, args: dict[str, Any]) -> Any:
    """AdamW over ``parameters``, all decayed (a LoRA adapter's A and B), as `build_adamw`
    builds it for a model of those parameters: one stacked adapter's own optimizer.

    Args:
        parameters: The parameters it steps.
        hp: Their learning rate and weight decay.
        optim: ``adamw_torch`` or ``adamw_torch_fused`` (None: the Trainer's default).
        args: ``training.args``: its betas and epsilon.

    Returns:
        A ``torch.optim.AdamW``.
    """
    groups = [{"params": parameters, "weight_decay": hp.weight_decay}]
    return torch.optim.AdamW(groups, lr=hp.learning_rate, **_adamw_options(optim, args))


def _adamw_options(optim: str | None, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "betas": (args.get("adam_beta1", 0.9), args.get("adam_beta2", 0.999)),
        "eps": args.get("adam_epsilon", 1e-8),
        "fused": (optim or default_optimizer()) == "adamw_torch_fused",
    }


def windows(batches: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """The batches, ``size`` at a time (the last window of an epoch may be short)."""
    window: list[Any] = []
    for batch in batches:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def targets(batch: dict[str, Any]) -> Any:
    """How many tokens of ``batch`` are predicted (labels shift by one)."""
    return (batch["labels"][:, 1:] != -100).sum()
