"""pydantic's validation errors of a configuration told as one line per problem: the key,
what is wrong and the fix (a near name, or the hptune key for a Trainer/TRL/peft name)."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError

from hptune.config._base import redact_url

__all__ = ["FOREIGN_KEYS", "describe_errors"]


def describe_errors(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line per problem: the key, what is wrong, and how to fix it.

    Args:
        exc: pydantic's error for ``root``.
        root: The model validated (``TuneConfig``): unknown keys are looked up in it.

    Returns:
        The message of the ConfigError, starting ``invalid configuration:``.
    """
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(_unknown_key_message(error["loc"], root))
        elif error["type"] == "missing":
            lines.append(f"{location}: required key is missing; add it")
        else:
            message = error["msg"].removeprefix("Value error, ")
            given = error.get("input")
            if isinstance(given, str):  # a storage URL's password never shows
                given = redact_url(given)
            lines.append(f"{location}: {message} (got {given!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


_CHECKPOINTS = (
    "hptune validates every epoch and keeps each seed's best epoch (training.checkpoints; "
    "training.eval_steps adds looks within an epoch for the pruner), and hptune export "
    "writes this key for your Trainer"
)
#: Trainer / TRL / peft names with no same-meaning hptune key: what to write instead.
#: (Names that mean the same are read as the hptune key: see the fields' aliases.)
FOREIGN_KEYS = {
    "bf16": "hptune sets the mixed precision from the machine (bf16 where the GPU has it, "
    "else fp16); the weights' dtype is model.dtype",
    "fp16": "hptune sets the mixed precision from the machine (bf16 where the GPU has it, "
    "else fp16); the weights' dtype is model.dtype",
    "seed": "the seeds are objective.seeds (a count or a list): every configuration trains "
    "on each of them",
    "data_seed": "the data order follows each seed of objective.seeds",
    "warmup_steps": "use training.warmup_ratio (the share of optimizer steps warming up)",
    "max_steps": "hptune trains whole epochs: training.epochs (training.max_train_examples "
    "for fewer examples)",
    "eval_strategy": _CHECKPOINTS,
    "evaluation_strategy": _CHECKPOINTS,
    "save_strategy": _CHECKPOINTS,
    "load_best_model_at_end": _CHECKPOINTS,
    "metric_for_best_model": "the metric is objective.metric",
    "model_name_or_path": "the model is model.path",
    "dataset_name": "a hub or save_to_disk data set is data.dataset",
    "target_modules": "the adapted modules are method.target_modules",
    "lora_target_modules": "the adapted modules are method.target_modules",
    "load_in_4bit": "4-bit base weights are method.type: qlora",
    "use_peft": "the method is method.type (lora, qlora or full)",
}


def _unknown_key_message(loc: tuple[int | str, ...], root: type[BaseModel]) -> str:
    model = root
    for part in loc[:-1]:  # walk down to the model that holds the unknown key
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    known = sorted(model.model_fields)
    where = ".".join(str(p) for p in loc)
    key = str(loc[-1])
    for name, field in model.model_fields.items():
        choices = getattr(field.validation_alias, "choices", ())
        if key in choices:  # an alias left over: its field was given under another name too
            return f"{where}: means {name}, which is given too; keep one of the two"
    if key in FOREIGN_KEYS:
        return f"{where}: not an hptune key; {FOREIGN_KEYS[key]}"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{where}: unknown key; {hint}known keys here: {', '.join(known)}"
