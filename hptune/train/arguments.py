"""A configuration in the Trainer's words: the ``TrainingArguments`` (and TRL ``SFTConfig``)
keys that train what hptune trained. One mapping, used by the ``trainer`` and ``sft``
backends to build each trial's run, and by ``hptune export`` to hand it over.
"""

from __future__ import annotations

import dataclasses
import inspect
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from hptune._lazy import (
    torch,
    transformers,
    transformers_optimization,
    transformers_trainer_utils,
)
from hptune.config._passthrough import trainer_fields

if TYPE_CHECKING:
    from hptune.config import TuneConfig
    from hptune.hparams import HParams

__all__ = [
    "default_optimizer",
    "hparam_arguments",
    "mixed_precision",
    "run_args",
    "scheduler_kwargs",
    "sft_arguments",
    "training_arguments",
]


def mixed_precision() -> str:
    """``bf16`` or ``fp16`` on a GPU (bf16 where it is supported), ``no`` on a CPU."""
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def default_optimizer() -> str:
    """The Trainer's default optimizer here: ``adamw_torch_fused`` (torch >= 2.8) or
    ``adamw_torch``; hptune's own loop uses the same."""
    default = transformers.TrainingArguments.__dataclass_fields__["optim"].default
    return str(getattr(default, "value", default))


def hparam_arguments(hp: HParams) -> dict[str, Any]:
    """The ``TrainingArguments`` keys of the hyperparameters hptune tunes.

    Args:
        hp: The hyperparameters.

    Returns:
        ``learning_rate``, ``per_device_train_batch_size``, ``gradient_accumulation_steps``,
        ``num_train_epochs``, the warmup, ``weight_decay``, ``lr_scheduler_type`` and
        ``max_grad_norm``.
    """
    return {
        "learning_rate": hp.learning_rate,
        "per_device_train_batch_size": hp.batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation_steps,
        "num_train_epochs": hp.epochs,
        **_warmup(hp.warmup_ratio),
        "weight_decay": hp.weight_decay,
        "lr_scheduler_type": hp.scheduler,
        "max_grad_norm": hp.max_grad_norm or 0.0,
    }


def training_arguments(
    config: TuneConfig, hp: HParams, seed: int, *, precision: str | None = None
) -> dict[str, Any]:
    """``TrainingArguments`` keys that train ``hp`` with ``seed`` as hptune trains it.

    Args:
        config: The run's configuration.
        hp: The hyperparameters.
        seed: The seed (it also seeds the data order, as ``data_seed``).
        precision: ``bf16``, ``fp16`` or ``no``; by default this machine's; ``unknown`` (a
            run recorded before hptune recorded it) leaves both keys out.

    Returns:
        Keyword arguments for ``TrainingArguments(output_dir=..., **keys)``.
    """
    precision = precision or mixed_precision()
    keys: dict[str, Any] = {
        **hparam_arguments(hp),
        "optim": config.training.optim or default_optimizer(),
        "seed": seed,
        "data_seed": seed,
        **_checkpointing(config.training.gradient_checkpointing),
    }
    if precision != "unknown":
        keys.update(bf16=precision == "bf16", fp16=precision == "fp16")
    keys.update(_passed_through(config, sft=False))
    keys.update(dict(hp.args))  # a phase's searched values, over training.args
    if "lr_scheduler_kwargs" in keys:
        keys["lr_scheduler_kwargs"] = scheduler_kwargs(hp.scheduler, keys["lr_scheduler_kwargs"])
    return keys


def run_args(config: TuneConfig, hp: HParams) -> dict[str, Any]:
    """The ``training.args`` a run trains with: the configuration's, with a phase's searched
    values (``hp.args``) over them.

    Args:
        config: The run's configuration.
        hp: The run's hyperparameters.

    Returns:
        The merged keys.
    """
    return {**config.training.args, **dict(hp.args)}


def scheduler_kwargs(scheduler: str, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The ``lr_scheduler_kwargs`` that ``scheduler`` takes: the regularization phase tries
    several schedules with one ``training.args``, and a schedule function refuses a keyword
    it does not have (``min_lr_rate`` for ``linear``).

    Args:
        scheduler: A transformers scheduler name.
        kwargs: ``training.args.lr_scheduler_kwargs``.

    Returns:
        The keywords of ``kwargs`` its schedule function has.
    """
    if not kwargs:
        return {}
    kind = transformers_trainer_utils.SchedulerType(scheduler)
    function = transformers_optimization.TYPE_TO_SCHEDULER_FUNCTION[kind]
    accepted = inspect.signature(function).parameters  # type: ignore[arg-type]
    return {k: v for k, v in kwargs.items() if k in accepted}


def _passed_through(config: TuneConfig, *, sft: bool) -> dict[str, Any]:
    """``training.args``: the ``TrainingArguments`` keys, or (``sft``) the ``SFTConfig``
    keys beyond them."""
    args = config.training.args
    if not args:
        return {}
    base = trainer_fields()
    return {k: v for k, v in args.items() if (k not in base) == sft}


def sft_arguments(config: TuneConfig, data_format: str) -> dict[str, Any]:
    """The TRL ``SFTConfig`` keys beyond ``TrainingArguments``: the sequence length and which
    tokens train (the completion, or every assistant turn of a conversation).

    Args:
        config: The run's configuration.
        data_format: The data's format as read (``chat``, ``alpaca``...).

    Returns:
        Keyword arguments for ``SFTConfig`` besides the ``TrainingArguments`` ones.
    """
    keys: dict[str, Any] = {"max_length": config.data.max_length, "packing": False}
    if data_format == "chat":
        keys["assistant_only_loss"] = True
    else:
        keys["completion_only_loss"] = True
    keys.update(_passed_through(config, sft=True))
    return keys


def _warmup(ratio: float) -> dict[str, Any]:
    # transformers 5 takes a ratio as a float warmup_steps; earlier versions had warmup_ratio.
    if int(version("transformers").split(".")[0]) >= 5:
        return {"warmup_steps": ratio}
    return {"warmup_ratio": ratio}


def _checkpointing(enabled: bool) -> dict[str, Any]:
    # Said either way: TRL's SFTConfig turns it on by default. It takes the name the
    # installed transformers uses (5.x renamed it and warns on the old one).
    names = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    return {key: enabled}
