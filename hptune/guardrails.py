"""The method's "never do" list, checked before anything trains.

Each check returns findings: a warning by default, an error under ``guardrails.strict``.
A check can be silenced with ``guardrails.ignore: [name]`` (for example a tiny model that
needs rates far above the danger level for 7B models).

==========================  ==========================================================
check                       finding
==========================  ==========================================================
high_learning_rate          a learning rate (configured or in the grid) at or above the
                            method's danger level: 5e-4 for LoRA, 1e-3 for QLoRA, 5e-5
                            for full fine-tuning
no_warmup                   warmup ratio 0
single_seed                 one seed: a single run cannot be trusted
two_seeds                   two seeds: a 95% interval over 2 paired seeds uses t = 12.7,
                            so configurations are seldom told apart
test_overlaps_validation    the validation split equals or shares examples with the test
                            split (tuning on the test set)
validation_is_training      the validation split equals or shares examples with the
                            training split (the metric is computed on training data)
trust_remote_code           the model's own Python code will run
short_bleu_references       the metric is BLEU and the median validation answer is under
                            4 words: sacrebleu's BLEU is 0 for any answer shorter than its
                            4-gram order, right or wrong, so every configuration ties
batch_over_memory           the starting batch is predicted not to fit the target's memory
                            (the memory model of the model and method, at the longest
                            training example): every trial up to the batch phase would run
                            out of memory
==========================  ==========================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from hptune.config import GuardrailCheck
from hptune.exceptions import ConfigError

if TYPE_CHECKING:
    from hptune.config import TuneConfig
    from hptune.hparams import HParams
    from hptune.train.data import PreparedData
    from hptune.train.target import MemoryCheck

__all__ = ["CHECKS", "DANGER_LEARNING_RATE", "Finding", "check", "enforce"]

#: The learning rate at which training tends to diverge, by method (the guide's 5e-4 for
#: LoRA, scaled like the methods' recommended rates: QLoRA 2x, full fine-tuning 1/10).
DANGER_LEARNING_RATE: dict[str, float] = {"lora": 5e-4, "qlora": 1e-3, "full": 5e-5}

#: Every check, by name, in the order they run (``guardrails.ignore`` names them).
CHECKS: tuple[GuardrailCheck, ...] = get_args(GuardrailCheck)


@dataclass(frozen=True)
class Finding:
    """One guardrail finding: which check, what is wrong, and how to fix it.

    Args:
        check: The check's name (one of ``CHECKS``).
        message: What is wrong.
        fix: How to fix it.
        level: ``error`` under ``guardrails.strict`` (the run is refused), else ``warning``.
    """

    check: str
    message: str
    fix: str
    level: Literal["warning", "error"] = "warning"

    def __str__(self) -> str:
        return f"{self.check}: {self.message}; {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-serialisable)."""
        return asdict(self)


def check(
    config: TuneConfig,
    hparams: HParams,
    data: PreparedData | None = None,
    memory: MemoryCheck | None = None,
) -> list[Finding]:
    """Every finding for ``config`` starting from ``hparams``; split checks need ``data``.

    Args:
        config: The run's configuration (its ``guardrails`` section: ``strict``, ``ignore``).
        hparams: The configuration the run starts from.
        data: The prepared splits; without them, only identical split files are caught.
        memory: The memory model against the target's limit; without it (no limit known),
            the batch is not checked.

    Returns:
        The findings of every check not ignored, at the configured level.
    """
    level: Literal["warning", "error"] = "error" if config.guardrails.strict else "warning"
    findings = [
        *_learning_rate(config, hparams),
        *_warmup(hparams),
        *_seeds(config),
        *_splits(config, data),
        *_remote_code(config),
        *_short_bleu(config, data),
        *_batch_memory(hparams, memory),
    ]
    ignored = set(config.guardrails.ignore)
    return [Finding(f.check, f.message, f.fix, level) for f in findings if f.check not in ignored]


def enforce(findings: list[Finding]) -> None:
    """Raise a ConfigError listing the error-level findings, if any.

    Args:
        findings: What ``check`` found.

    Raises:
        ConfigError: At least one finding is an error (``guardrails.strict``).
    """
    errors = [f for f in findings if f.level == "error"]
    if errors:
        raise ConfigError(
            "guardrails refused the configuration (guardrails.strict is on):\n  "
            + "\n  ".join(str(f) for f in errors)
            + "\n  Fix each, or list the check under guardrails.ignore if you mean it."
        )


def _learning_rate(config: TuneConfig, hparams: HParams) -> list[Finding]:
    danger = DANGER_LEARNING_RATE[config.method.type]
    rates = {"training.learning_rate": [hparams.learning_rate]}
    if "learning_rate" in config.phases.run:
        rates["phases.learning_rate.grid"] = list(config.phases.learning_rate.grid)
    findings = []
    for key, values in rates.items():
        high = [lr for lr in values if lr >= danger]
        if high:
            findings.append(
                Finding(
                    "high_learning_rate",
                    f"{key} has {', '.join(f'{lr:g}' for lr in high)}, at or above "
                    f"{danger:g}, where {config.method.type} fine-tuning tends to diverge",
                    f"use rates below {danger:g} (the preset is {danger / 5:g})",
                )
            )
    return findings


def _warmup(hparams: HParams) -> list[Finding]:
    if hparams.warmup_ratio > 0:
        return []
    return [
        Finding(
            "no_warmup",
            "training.warmup_ratio is 0: the first steps run at the full learning rate",
            "set training.warmup_ratio to 0.05-0.10 (5-10% of the steps)",
        )
    ]


def _seeds(config: TuneConfig) -> list[Finding]:
    n = len(config.objective.seed_list)
    if n == 1:
        return [
            Finding(
                "single_seed",
                "objective.seeds is 1: one run per configuration cannot tell an effect from luck",
                "use objective.seeds: 3",
            )
        ]
    if n == 2:
        return [
            Finding(
                "two_seeds",
                "objective.seeds is 2: the 95% interval of a difference over 2 paired seeds "
                "uses t = 12.7, so two configurations are seldom told apart on them; racing "
                "then adds seeds (up to objective.max_seeds), or the best mean decides on "
                "thin evidence",
                "use objective.seeds: 3 (t = 4.3) or more",
            )
        ]
    return []


#: The pairs of splits that must not share examples: their check and its fix.
_SPLIT_CHECKS = (
    (
        "validation/test",
        "test_overlaps_validation",
        "give a validation split with no test examples: tuning on the test set makes the "
        "test result meaningless",
    ),
    (
        "train/validation",
        "validation_is_training",
        "give a validation split with no training examples: judge by held-out data",
    ),
)


def _splits(config: TuneConfig, data: PreparedData | None) -> list[Finding]:
    findings = []
    data_config = config.data
    same_file = {
        "validation/test": data_config.validation is not None
        and data_config.validation == data_config.test,
        "train/validation": data_config.train is not None
        and data_config.train == data_config.validation,
    }
    fingerprints = data.fingerprints if data is not None else {}
    overlaps = data.overlaps if data is not None else {}
    for pair, check_name, fix in _SPLIT_CHECKS:
        first, second = pair.split("/")
        equal = same_file[pair] or (
            first in fingerprints and fingerprints.get(first) == fingerprints.get(second)
        )
        shared = overlaps.get(pair, 0)
        if equal:
            findings.append(
                Finding(check_name, f"the {first} and {second} splits are the same data", fix)
            )
        elif shared:
            findings.append(
                Finding(
                    check_name,
                    f"{shared} example(s) are in both the {first} and {second} splits",
                    fix,
                )
            )
    return findings


def _remote_code(config: TuneConfig) -> list[Finding]:
    if not config.model.trust_remote_code:
        return []
    return [
        Finding(
            "trust_remote_code",
            f"model.trust_remote_code is on: Python code shipped with {config.model.path!r} "
            "will run on this machine",
            "keep it on only for a model whose code you have read and trust",
        )
    ]


def _short_bleu(config: TuneConfig, data: PreparedData | None) -> list[Finding]:
    if config.objective.metric != "bleu" or data is None or not data.validation_references:
        return []
    words = sorted(len(r.split()) for r in data.validation_references)
    median = words[len(words) // 2]
    if median >= 4:
        return []
    return [
        Finding(
            "short_bleu_references",
            f"the metric is BLEU and the median validation answer has {median} word(s): BLEU "
            "is 0 for an answer under 4 words even when it is exactly right, so "
            "configurations cannot be told apart",
            "use objective.metric: exact_match (short answers) or chrf (character n-grams)",
        )
    ]


def _batch_memory(hparams: HParams, memory: MemoryCheck | None) -> list[Finding]:
    if memory is None or memory.fits(hparams.batch_size):
        return []
    batch, effective = hparams.batch_size, hparams.effective_batch_size
    where = (
        f"{memory.usable_bytes / 2**30:.3g} GiB may be used on {memory.target.name} "
        f"({memory.limit_bytes / 2**30:.3g} GiB x safety margin {memory.safety_margin:g})"
    )
    largest = memory.largest_batch()
    smaller = [b for b in range(min(largest, batch), 0, -1) if effective % b == 0]
    if smaller:
        fix = (
            f"use training.batch_size: {smaller[0]} with gradient_accumulation_steps: "
            f"{effective // smaller[0]} (the same effective batch {effective}; predicted "
            f"{memory.gb(smaller[0]):.3g} GiB), or turn on training.gradient_checkpointing"
        )
    else:
        fix = (
            f"not even batch 1 fits ({memory.gb(1):.3g} GiB): use method.type: qlora, "
            "training.gradient_checkpointing, a shorter data.max_length or a larger GPU"
        )
    return [
        Finding(
            "batch_over_memory",
            f"training.batch_size {batch} is predicted to need {memory.gb(batch):.3g} GiB per "
            f"training step and {where}: the runs before the batch phase would run out of "
            "memory",
            fix,
        )
    ]
