"""The chosen configuration in the names Hugging Face users know, with what reproduces the
run: ``TrainingArguments`` keys (the decided values, the seed, the optimizer, the mixed
precision), TRL ``SFTConfig`` keys, the ``from_pretrained`` dtype, how the records became
text, and a peft ``LoraConfig`` (plus the 4-bit ``BitsAndBytesConfig`` for QLoRA).

Read from the storage, so it works on any machine that reaches the storage, without data or
model: ``TrainingArguments(output_dir=..., **exported["training_args"])``,
``SFTConfig(output_dir=..., **exported["training_args"], **exported["sft_config"])`` and
``LoraConfig(**exported["lora_config"])`` build the run; hptune's ``trainer`` and ``sft``
backends train each trial from these same keys.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from hptune.config import TuneConfig, load_config
from hptune.hparams import HParams
from hptune.record import RunRecord
from hptune.train.arguments import sft_arguments, training_arguments

__all__ = ["export", "exported_config", "final_hparams"]


def final_hparams(config: TuneConfig) -> tuple[HParams, dict[str, Any]]:
    """The configuration the finished phases decided, and each phase's decision, from storage.

    Args:
        config: The run's configuration.

    Returns:
        The decided configuration, and by phase its decision's case, parameters, value and
        reason, with the rate each candidate won at where the phase re-tuned it
        (``rates_won``; for ``final``: the test evaluation's summary).

    Raises:
        NoStorageYet: Nothing has run yet.
        ConfigError: A configured phase has no decision yet.
    """
    hp, decisions = RunRecord(config).decided_hparams()
    evidence: dict[str, Any] = {
        phase: {"case": d.case, "params": d.params, "value": d.value, "reason": d.reason}
        | ({"rates_won": d.summary["rates_won"]} if "rates_won" in d.summary else {})
        for phase, d in decisions.items()
        if phase != "final"
    }
    if "final" in decisions:
        evidence["final"] = decisions["final"].summary
    return hp, evidence


def exported_config(config: TuneConfig) -> dict[str, Any]:
    """The decided configuration in the keys that reproduce the run.

    Args:
        config: The run's configuration.

    Returns:
        ``model``, ``method``, ``model_init`` (``from_pretrained`` keys: the dtype the
        trials' weights loaded in; ``gguf_file`` for a GGUF checkpoint),
        ``training_args`` (``TrainingArguments`` keys: the decided values, the first seed,
        the optimizer, the mixed precision the trials trained in, gradient checkpointing),
        ``sft_config`` (the TRL ``SFTConfig`` keys beyond those: ``max_length`` and which
        tokens train), ``data`` (how records became text), ``lora_config`` (not for full
        fine-tuning), ``bnb_config`` (QLoRA), ``early_stopping`` (when configured) and
        ``hptune`` (the run's name, metric, seeds and decisions).

    Raises:
        NoStorageYet: Nothing has run yet.
        ConfigError: A configured phase has no decision yet.
    """
    hp, decisions = final_hparams(config)
    record = RunRecord(config)
    environment = record.environment()
    config = record.fitted_config()  # the seeds (and sizes) the run ran, after its budget fit
    preparation = environment.get("preparation", {})
    data_format = preparation.get("format_name", config.data.format)
    exported: dict[str, Any] = {
        "model": config.model.path,
        "method": config.method.type,
        "model_init": {"dtype": environment.get("dtype", config.model.dtype)}
        | ({"gguf_file": config.model.gguf_file} if config.model.gguf_file else {}),
        "training_args": _training_args(config, hp, environment),
        "sft_config": sft_arguments(config, data_format),
        "data": _data(config, data_format),
    }
    if config.training.early_stopping_patience is not None:
        exported["early_stopping"] = {
            "early_stopping_patience": config.training.early_stopping_patience
        }
    exported.update(_method_keys(config, hp))
    exported["hptune"] = _run_keys(config, environment, decisions)
    return exported


def _training_args(config: TuneConfig, hp: HParams, environment: dict[str, Any]) -> dict[str, Any]:
    """``TrainingArguments`` keys: the decided values, the first seed, the precision, and
    the method's tips on evaluating and keeping checkpoints."""
    precision = environment.get("precision", "unknown")
    training_args = training_arguments(
        config, hp, config.objective.seed_list[0], precision=precision
    )
    training_args.update(
        # The method's tips: evaluate and save every epoch, keep the best by validation. A
        # plain Trainer measures the validation loss only (a text metric needs answers
        # generated), so a run decided by one keeps the best epoch by the loss; "kept_by"
        # in the run's keys says how to keep it by the metric.
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
    )
    return training_args


def _method_keys(config: TuneConfig, hp: HParams) -> dict[str, Any]:
    """peft's ``LoraConfig`` (not for full fine-tuning), LoRA+'s optimizer, and QLoRA's
    ``BitsAndBytesConfig``, each where the method has it."""
    method = config.method
    keys: dict[str, Any] = {}
    if method.type != "full":
        keys["lora_config"] = {
            "r": hp.lora_r or method.r,  # a lora_rank phase's decision, else the method's
            "lora_alpha": hp.lora_alpha or method.alpha,
            "lora_dropout": method.dropout,
            "target_modules": method.target_modules,
            "task_type": "CAUSAL_LM",
            **method.lora,
        }
    if method.loraplus_lr_ratio:
        keys["loraplus"] = {
            "loraplus_lr_ratio": method.loraplus_lr_ratio,
            "optimizer": "peft.optimizers.create_loraplus_optimizer(model, torch.optim.AdamW, "
            "lr=learning_rate, loraplus_lr_ratio=..., loraplus_weight_decay=weight_decay), "
            "passed to the Trainer as optimizers=(optimizer, None)",
        }
    if method.type == "qlora":
        keys["bnb_config"] = {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": "bfloat16",
            "bnb_4bit_use_double_quant": True,
        }
    return keys


def _run_keys(
    config: TuneConfig, environment: dict[str, Any], decisions: dict[str, Any]
) -> dict[str, Any]:
    """The run's name, metric, seeds, backend, library versions and decisions; for a text
    metric, how to keep the best epoch by it."""
    objective = config.objective
    keys: dict[str, Any] = {
        "name": config.name,
        "metric": objective.metric_name,
        "seeds": objective.seed_list,
        "backend": environment.get("backend", "accelerate"),
        "written_for": _versions(),
        "decisions": decisions,
    }
    if objective.metric != "eval_loss":
        keys["kept_by"] = (
            f"the run was decided by {objective.metric_name} on generated answers; "
            "training_args keep the best epoch by eval_loss, which a plain Trainer measures. "
            "To keep it by the metric, generate answers in compute_metrics (e.g. a "
            "Seq2SeqTrainer with predict_with_generate) and set metric_for_best_model to "
            f"its key, greater_is_better: {objective.goal == 'maximize'}"
        )
    return keys


def _versions() -> dict[str, str]:
    """The library versions whose keys the export writes (``TrainingArguments``,
    ``SFTConfig``, ``LoraConfig`` names change between major versions)."""
    found = {}
    for package in ("transformers", "peft", "trl", "hptune"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:  # trl is optional
            continue
    return found


def _data(config: TuneConfig, data_format: str) -> dict[str, Any]:
    """How the records became training text: the format, and what it read."""
    data = config.data
    described: dict[str, Any] = {"format": data_format, "max_length": data.max_length}
    if data_format == "template":
        described.update(template=data.template, response_field=data.response_field)
    if data_format in ("template", "alpaca", "prompt_completion"):
        described["loss_on"] = "the completion only"
    elif data_format == "chat":
        described["loss_on"] = "every assistant turn"
    # Whose rules made the tokens: TRL's (SFTTrainer on the raw records, as a script given
    # sft_config trains) or hptune's (every assistant turn with its line end; a BOS always).
    described["tokenization"] = data.tokenization_for(config.training.backend)
    if data.chat_template is not None:  # its text, where a file was named: the export stands alone
        template = data.chat_template
        if "{" not in template and Path(template).is_file():
            template = Path(template).read_text(encoding="utf-8")
        described["chat_template"] = template
    if data.drop_long:  # left out, not cut: SFTConfig's max_length would truncate them
        described["drop_long"] = True
    return described


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
