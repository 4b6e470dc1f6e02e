"""The chosen configuration in the names Hugging Face users know: ``TrainingArguments`` keys
and a peft ``LoraConfig`` (plus the 4-bit ``BitsAndBytesConfig`` for QLoRA).

Read from the storage, so it works on any machine that reaches the storage, without data or
model: ``TrainingArguments(output_dir=..., **exported["training_args"])`` and
``LoraConfig(**exported["lora_config"])`` build the run, for ``Trainer`` or TRL's
``SFTTrainer`` (whose ``SFTConfig`` takes the same keys).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hptune.config import TuneConfig, load_config
from hptune.hparams import HParams

__all__ = ["export", "exported_config", "final_hparams"]


def final_hparams(config: TuneConfig) -> tuple[HParams, dict[str, Any]]:
    """The configuration the finished phases decided, and each phase's decision, from storage.

    Args:
        config: The run's configuration.

    Returns:
        The decided configuration, and by phase its decision's case, parameters, value and
        reason (for ``final``: the test evaluation's summary).

    Raises:
        NoStorageYet: Nothing has run yet.
        ConfigError: A configured phase has no decision yet.
    """
    from hptune.record import RunRecord

    hp, decisions = RunRecord(config).decided_hparams()
    evidence: dict[str, Any] = {
        phase: {"case": d.case, "params": d.params, "value": d.value, "reason": d.reason}
        for phase, d in decisions.items()
        if phase != "final"
    }
    if "final" in decisions:
        evidence["final"] = decisions["final"].summary
    return hp, evidence


def exported_config(config: TuneConfig) -> dict[str, Any]:
    """The decided configuration as ``training_args``, ``lora_config`` and evidence.

    Args:
        config: The run's configuration.

    Returns:
        ``model``, ``method``, ``training_args`` (``TrainingArguments`` keys), ``lora_config``
        (not for full fine-tuning), ``bnb_config`` (QLoRA), ``early_stopping`` (when
        configured) and ``hptune`` (the run's name, metric, seeds and decisions).

    Raises:
        NoStorageYet: Nothing has run yet.
        ConfigError: A configured phase has no decision yet.
    """
    hp, decisions = final_hparams(config)
    objective = config.objective
    training_args: dict[str, Any] = {
        "learning_rate": hp.learning_rate,
        "per_device_train_batch_size": hp.batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation_steps,
        "num_train_epochs": hp.epochs,
        **_warmup(hp.warmup_ratio),
        "weight_decay": hp.weight_decay,
        "lr_scheduler_type": hp.scheduler,
        "max_grad_norm": hp.max_grad_norm or 0.0,
        "seed": objective.seed_list[0],
        # The method's tips: evaluate and save every epoch, keep the best by validation.
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": "eval_loss" if objective.metric == "eval_loss" else "eval_score",
        "greater_is_better": objective.goal == "maximize",
        **_checkpointing(config.training.gradient_checkpointing),
    }
    exported: dict[str, Any] = {
        "model": config.model.path,
        "method": config.method.type,
        "training_args": training_args,
    }
    if config.training.early_stopping_patience is not None:
        exported["early_stopping"] = {
            "early_stopping_patience": config.training.early_stopping_patience
        }
    if config.method.type != "full":
        method = config.method
        exported["lora_config"] = {
            "r": method.r,
            "lora_alpha": method.alpha,
            "lora_dropout": method.dropout,
            "target_modules": method.target_modules,
            "task_type": "CAUSAL_LM",
        }
    if config.method.type == "qlora":
        exported["bnb_config"] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": "bfloat16",
            "bnb_4bit_use_double_quant": True,
        }
    exported["hptune"] = {"name": config.name, "metric": objective.metric_name,
                          "seeds": objective.seed_list, "decisions": decisions}  # fmt: skip
    return exported


def _warmup(ratio: float) -> dict[str, Any]:
    # transformers 5 takes a ratio as a float warmup_steps; earlier versions had warmup_ratio.
    from importlib.metadata import version

    if int(version("transformers").split(".")[0]) >= 5:
        return {"warmup_steps": ratio}
    return {"warmup_ratio": ratio}


def _checkpointing(enabled: bool) -> dict[str, Any]:
    # Off is TrainingArguments' default, so it is left out; on, it takes the name the
    # installed transformers uses (5.x renamed it and warns on the old one).
    if not enabled:
        return {}
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    return {key: True}


def export(
    config: TuneConfig | str | os.PathLike[str], output_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Write the decided configuration as YAML and JSON; return the two paths.

    Args:
        config: The configuration, or the path of its YAML file.
        output_dir: Where to write ``<name>-best.yaml`` and ``<name>-best.json``; by default
            the run's output directory.

    Returns:
        The YAML file's path, then the JSON file's.

    Raises:
        NoStorageYet: Nothing has run yet.
        ConfigError: The configuration is invalid, or a configured phase has no decision
            yet.
    """
    import yaml

    if not isinstance(config, TuneConfig):
        config = load_config(config, check_paths=False)
    exported = exported_config(config)
    directory = Path(output_dir) if output_dir is not None else Path(config.output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{config.name}-best"
    paths = [stem.with_suffix(".yaml"), stem.with_suffix(".json")]
    texts = [
        yaml.safe_dump(exported, sort_keys=False, allow_unicode=True),
        json.dumps(exported, indent=2) + "\n",
    ]
    for path, text in zip(paths, texts, strict=True):
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)  # never a half-written file
    return paths
