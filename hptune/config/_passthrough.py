"""The keys passed through to peft and transformers as given (``method.lora``,
``training.args``, ``training.optim``), checked against the installed libraries' own classes.

Each check names the key, the nearest known name, and where hptune's own key is when hptune
sets it; the libraries are imported only when there is something to check.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from hptune._lazy import peft, transformers, trl
from hptune.config._backends import BACKENDS

if TYPE_CHECKING:
    import transformers.training_args

#: LoraConfig keys hptune sets itself: where to set them instead.
LORA_KEYS_OWNED = {
    "r": "the rank, method.r",
    "lora_alpha": "method.alpha",
    "lora_dropout": "method.dropout",
    "target_modules": "method.target_modules",
    "task_type": "set by hptune (CAUSAL_LM)",
    "peft_type": "set by hptune (LORA)",
    "base_model_name_or_path": "set by hptune (the model at model.path)",
    "revision": "set by hptune (the model at model.path)",
    "inference_mode": "set by hptune (training)",
}
#: LoraConfig keys that shape the adapter but leave every base weight as loaded.
LORA_KEYS_BASE_UNCHANGED = {
    "use_rslora",
    "use_dora",
    "layers_to_transform",
    "layers_pattern",
    "rank_pattern",
    "alpha_pattern",
    "exclude_modules",
    "fan_in_fan_out",
    "init_lora_weights",
    "lora_bias",
}

_TUNED = "tuned by hptune: the starting value is"
_SCORED = (
    "set by hptune, which validates every epoch itself (training.eval_steps adds looks) and "
    "keeps each seed's best epoch; hptune export writes it for your Trainer"
)
#: TrainingArguments / SFTConfig keys hptune sets itself, with no ``training`` key of the
#: same meaning (those are read as it, `ARGS_SAME`): where to set them instead.
ARGS_OWNED = {
    "warmup_steps": f"{_TUNED} training.warmup_ratio",
    "report_to": "training.report_to",
    "seed": "objective.seeds (every configuration trains on each)",
    "data_seed": "set by hptune (each seed of objective.seeds orders the data)",
    "output_dir": "set by hptune (under output_dir)",
    "bf16": "set by hptune from the machine (bf16 where the GPU has it); the weights' dtype "
    "is model.dtype",
    "fp16": "set by hptune from the machine (bf16 where the GPU has it, else fp16)",
    "eval_strategy": _SCORED,
    "save_strategy": _SCORED,
    "load_best_model_at_end": _SCORED,
    "metric_for_best_model": "objective.metric",
    "max_steps": "set by hptune, which trains whole epochs (training.epochs)",
    "use_cpu": "set by hptune from the machine",
    "dataloader_num_workers": "set by hptune (0: the data order follows the seed alone)",
    "remove_unused_columns": "set by hptune (its batches carry what the model needs)",
    "logging_strategy": "set by hptune (per epoch with training.report_to, else off)",
    "disable_tqdm": "set by hptune, which prints its own progress",
    "logging_nan_inf_filter": "set by hptune (its divergence watch sees every loss)",
    "max_length": "data.max_length",
    "max_seq_length": "data.max_length",
    "completion_only_loss": "set by hptune from the data's format (the tokens it scores)",
    "assistant_only_loss": "set by hptune from the data's format (the tokens it scores)",
    "dataset_text_field": "set by hptune from the data's format",
}
#: TrainingArguments keys that mean the same as a ``training`` key: read as that key.
ARGS_SAME = {
    "learning_rate": "learning_rate",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "num_train_epochs": "epochs",
    "warmup_ratio": "warmup_ratio",
    "weight_decay": "weight_decay",
    "lr_scheduler_type": "scheduler",
    "max_grad_norm": "max_grad_norm",
    "optim": "optim",
    "gradient_checkpointing": "gradient_checkpointing",
    "activation_checkpointing": "gradient_checkpointing",
    "eval_steps": "eval_steps",
}


def lift_same_args(training: dict[str, Any]) -> dict[str, Any]:
    """``training`` with each ``args`` key that means a ``training`` key moved there.

    Raises:
        ValueError: Both given, with different values.
    """
    args = training.get("args")
    if not isinstance(args, dict) or not set(args) & set(ARGS_SAME):
        return training
    training, args = dict(training), dict(args)
    for key in [k for k in args if k in ARGS_SAME]:
        field = ARGS_SAME[key]
        names = {field, key}  # the field may be given under its alias too
        given = [n for n in names if n in training]
        value = args.pop(key)
        if given and training[given[0]] != value:
            raise ValueError(
                f"args: {key} ({value!r}) is training.{field}, which is given too "
                f"({training[given[0]]!r}); keep one"
            )
        if not given:
            training[field] = value
    training["args"] = args
    return training


#: Schedulers that need ``lr_scheduler_kwargs``, and one key of each that will do.
SCHEDULER_KWARGS = {
    "cosine_with_min_lr": ("min_lr", "min_lr_rate"),
    "cosine_warmup_with_min_lr": ("min_lr", "min_lr_rate"),
    "warmup_stable_decay": ("num_decay_steps",),
}


def _unknown(key: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{key!r} is not a {what}; {hint}see its documentation for the keys"


def check_lora_keys(lora: dict[str, Any]) -> None:
    """Refuse a ``method.lora`` key the installed peft's ``LoraConfig`` lacks or hptune sets.

    Raises:
        ValueError: The key, the nearest name or hptune's key, or peft's own complaint.
    """
    for key in lora:
        if key in LORA_KEYS_OWNED:
            raise ValueError(f"{key!r} is {LORA_KEYS_OWNED[key]}; set it there")
    known = [f.name for f in dataclasses.fields(peft.LoraConfig)]
    for key in lora:
        if key not in known:
            raise ValueError(
                _unknown(key, known, f"LoraConfig key of the installed peft {peft.__version__}")
            )
    try:  # peft checks the values when the config is built
        peft.LoraConfig(r=8, target_modules=["q_proj"], **lora)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"peft's LoraConfig refuses it: {exc}") from None


def trainer_fields(arguments: str = "TrainingArguments") -> set[str]:
    """The keys of the installed ``TrainingArguments`` (or TRL's ``SFTConfig``).

    Args:
        arguments: ``TrainingArguments`` or ``SFTConfig`` (a backend's ``arguments``).

    Returns:
        The class's field names.
    """
    cls = trl.SFTConfig if arguments == "SFTConfig" else transformers.TrainingArguments
    return {f.name for f in dataclasses.fields(cls)}


def check_training_args(args: dict[str, Any], optim: str | None, backend: str) -> None:
    """Refuse ``training.args`` / ``training.optim`` that the backend cannot honour.

    Args:
        args: ``training.args``.
        optim: ``training.optim``.
        backend: ``training.backend``; what it honours is its declaration's
            (`hptune.config._backends`).

    Raises:
        ValueError: The key, what is wrong, and the fix.
    """
    declared = BACKENDS[backend]
    for key in args:
        if key in ARGS_OWNED:
            raise ValueError(f"args: {key!r} is {ARGS_OWNED[key]}; set it there")
    if args:
        _check_known_args(args, declared.arguments)
    # the backends that take any key of their class, for the way out
    free = [b.name for b in BACKENDS.values() if b.honoured_args is None]
    others = f"{free[0]} (or {', '.join(free[1:])})" if len(free) > 1 else free[0]
    if declared.honoured_args is not None:
        refused = [k for k in args if k not in declared.honoured_args]
        if refused:
            raise ValueError(
                f"args: {', '.join(refused)} is honoured by the Trainer backends only; set "
                f"training.backend: {others}, or remove it ({declared.label} honours "
                f"{', '.join(declared.honoured_args)})"
            )
    if declared.optimizers is not None:
        if optim is not None and optim not in declared.optimizers:
            raise ValueError(
                f"optim: {declared.label} trains with {' or '.join(declared.optimizers)}, not "
                f"{optim!r}; set training.backend: {others} for any Trainer optimizer"
            )
    elif optim is not None:
        _check_trainer_optimizer(optim)


def _check_known_args(args: dict[str, Any], arguments: str) -> None:
    """Refuse a key the backend's arguments class lacks: a key of another backend's class
    says which backend takes it; another, the nearest known name."""
    known = sorted(trainer_fields(arguments))
    library = "trl" if arguments == "SFTConfig" else "transformers"
    for key in args:
        if key in known:
            continue
        elsewhere = [
            b
            for b in BACKENDS.values()
            if b.arguments != arguments and _is_key_of(key, b.arguments)
        ]
        if elsewhere:
            raise ValueError(
                f"args: {key!r} is a key of TRL's {elsewhere[0].arguments}, which the "
                f"{elsewhere[0].name} backend trains with; set training.backend: "
                f"{elsewhere[0].name}"
            )
        raise ValueError(
            "args: " + _unknown(key, known, f"{arguments} key of {library} {version(library)}")
        )


def check_scheduler_kwargs(args: dict[str, Any], schedulers: set[str]) -> None:
    """Refuse a scheduler that needs ``lr_scheduler_kwargs`` the configuration lacks.

    Args:
        args: ``training.args``.
        schedulers: Every scheduler the run may train with (the starting one and the
            regularization phase's).

    Raises:
        ValueError: The scheduler and the keyword it needs.
    """
    kwargs = args.get("lr_scheduler_kwargs") or {}
    for scheduler in sorted(schedulers & set(SCHEDULER_KWARGS)):
        needed = SCHEDULER_KWARGS[scheduler]
        if not any(k in kwargs for k in needed):
            raise ValueError(
                f"the {scheduler} scheduler needs training.args.lr_scheduler_kwargs with "
                f"{' or '.join(needed)} (e.g. {{{needed[-1]}: 0.1}})"
            )


def _is_key_of(key: str, arguments: str) -> bool:
    """Whether ``key`` is a key of ``arguments`` (False where its library is not installed)."""
    if arguments == "SFTConfig" and importlib.util.find_spec("trl") is None:
        return False
    return key in trainer_fields(arguments)


def _check_trainer_optimizer(optim: str) -> None:
    names = [o.value for o in transformers.training_args.OptimizerNames]
    if optim not in names:
        raise ValueError("optim: " + _unknown(optim, names, "Trainer optimizer name"))
    needs_bnb = "8bit" in optim or "paged" in optim
    if needs_bnb and importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(
            f"optim: {optim} needs bitsandbytes (and a CUDA GPU); pip install bitsandbytes, "
            "or use adamw_torch"
        )
