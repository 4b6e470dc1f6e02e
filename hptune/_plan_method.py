"""What ``hptune plan`` says of the method: the adapter (or full fine-tuning) it trains, its
parameters, who chose it, and the disk its kept checkpoints take at most."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.config._together import why_not_together
from hptune.presets import SITUATIONS
from hptune.train.memory import parameter_counts
from hptune.train.together import seeds_per_step

if TYPE_CHECKING:
    from hptune.config import TuneConfig

__all__ = ["method_summary"]

#: Bytes per trained value a finished run's checkpoint keeps: LoRA adapters are trained and
#: saved in float32 (peft casts them up); a full fine-tune saves the model in its dtype.
_ADAPTER_BYTES = 4
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: AdamW's two float32 moments per trained value: the resume state kept beside the newest
#: checkpoint of the run in progress (``training_state.pt``), dropped when the run ends.
_OPTIMIZER_BYTES = 8


def method_summary(config: TuneConfig, dtype: str, trials: int) -> dict[str, Any]:
    """The method as the plan shows it.

    Args:
        config: The run's configuration.
        dtype: The weights' dtype on the target (``Target.dtype``).
        trials: The trials the plan runs at most (each keeps its checkpoints).

    Returns:
        ``type``, ``described`` (one line), the LoRA settings (``r``, ``alpha``, ``dropout``,
        ``target_modules``, ``lora``), ``trainable_parameters``, ``total_parameters``,
        ``chosen_by``, ``checkpoints`` (``per_checkpoint_bytes``, ``kept_at_most``,
        ``at_most_bytes``; None when ``training.checkpoints`` is off) and, for a GGUF
        checkpoint, ``gguf`` (`hptune.train.gguf.GgufSummary` and the plan's line).
    """
    method, training = config.method, config.training
    total, trainable = parameter_counts(config.model, method)
    situation = SITUATIONS.get(training.situation or "")
    chosen_by = (
        f"training.situation {training.situation}"
        if situation is not None and situation.method == method.type
        else "method.type"
    )
    share = f"{trainable:,} of {total:,} parameters train ({trainable / total:.2%})"
    if method.type == "full":
        described = f"full fine-tuning: {share}"
    else:
        base = "4-bit NF4 base (QLoRA), " if method.type == "qlora" else ""
        modules = method.target_modules
        extra = "".join(f", {k} {v}" for k, v in method.lora.items())
        described = (
            f"{method.type}: {base}r {method.r}, alpha {method.alpha}, dropout "
            f"{method.dropout:g}, target modules "
            f"{modules if isinstance(modules, str) else ', '.join(modules)}{extra}; {share}"
        )
    if chosen_by != "method.type":
        described += f" ({chosen_by} chose {method.type}; set method.type to choose another)"
    summary: dict[str, Any] = {
        "type": method.type,
        "described": described,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "chosen_by": chosen_by,
        "checkpoints": _checkpoints(config, dtype, trials, total, trainable),
    }
    if config.model.gguf_file is not None:
        summary["gguf"] = _gguf(config, dtype)
    if method.type != "full":
        summary.update(
            r=method.r,
            alpha=method.alpha,
            dropout=method.dropout,
            target_modules=method.target_modules,
            lora=dict(method.lora),
        )
    return summary


def _gguf(config: TuneConfig, dtype: str) -> dict[str, str]:
    """The GGUF file the model loads from, as the plan shows it."""
    from hptune.train.gguf import check_gguf

    assert config.model.gguf_file is not None
    gguf = check_gguf(config.model.path, config.model.gguf_file)
    return {
        "file": gguf.file,
        "architecture": gguf.architecture,
        "name": gguf.name,
        "quantization": gguf.quantization,
        "described": gguf.described(dtype),
    }


def _checkpoints(
    config: TuneConfig, dtype: str, trials: int, total: int, trainable: int
) -> dict[str, Any] | None:
    """The disk kept checkpoints take at most: every trial that completes keeps the best and
    the last epoch of each seed (diverged and pruned trials keep none)."""
    if not config.training.checkpoints:
        return None
    if config.method.type == "full":
        one = total * _DTYPE_BYTES.get(dtype, 4)
    else:
        one = trainable * _ADAPTER_BYTES
    seeds = len(config.objective.seed_list) + len(config.objective.racing_seeds)
    kept = trials * seeds * 2
    at_most = kept * one + trainable * _OPTIMIZER_BYTES
    return {
        "per_checkpoint_bytes": int(one),
        "kept_at_most": kept,
        "at_most_bytes": int(at_most),
    }


def seeds_together_summary(config: TuneConfig, runner: Any, hp: Any) -> dict[str, Any]:
    """How a trial's seeds train, as the plan shows it: one after the other, or K together
    (``training.seeds_together``) at the starting batch, with why not where it cannot.

    Args:
        config: The run's (fitted) configuration.
        runner: The run's trainer.
        hp: The starting configuration (its batch).

    Returns:
        ``setting`` (the configured value), ``together`` (K at the starting batch; 1: one
        after the other), ``of`` (the seeds of a trial), ``why_not`` (what blocks it, or
        None) and ``described`` (one line).
    """
    setting, seeds = config.training.seeds_together, config.objective.seed_list
    why = why_not_together(config.method, config.training)
    k = seeds_per_step(runner, hp, seeds)
    if k > 1:
        described = (
            f"seeds: {k} of {len(seeds)} trained together at the starting batch {hp.batch_size} "
            f"({k} LoRA adapters over one base, one step over their sub-batches"
            + ("" if k == len(seeds) else "; the memory limit fits no more, the rest follow")
            + ")"
        )
    elif not setting:
        auto = why is None and len(seeds) >= 2
        described = f"seeds: {len(seeds)}, one after the other" + (
            " (training.seeds_together: auto would train them together)" if auto else ""
        )
    else:
        reason = why or (
            "one seed" if len(seeds) < 2 else f"the memory limit fits one at batch {hp.batch_size}"
        )
        described = f"seeds: one after the other (training.seeds_together: {setting}, but {reason})"
    return {
        "setting": setting,
        "together": k,
        "of": len(seeds),
        "why_not": why,
        "described": described,
    }


def candidates_together_summary(config: TuneConfig, runner: Any, hp: Any) -> dict[str, Any]:
    """How the learning-rate grid's points train, as the plan shows it: one trial at a time,
    or as adapters over one base in groups (``training.candidates_together``), with what
    keeps them apart.

    Args:
        config: The run's (fitted) configuration.
        runner: The run's trainer.
        hp: The starting configuration (its batch).

    Returns:
        ``setting``, ``adapters`` (the grid's points x seeds), ``groups`` (the stacks they
        train in; 0: one trial at a time), ``why_not`` and ``described`` (one line).
    """
    from hptune.config._together import groups_candidates
    from hptune.train.target import stack_check

    setting, seeds = config.training.candidates_together, config.objective.seed_list
    rates = len(config.phases.learning_rate.grid) if "learning_rate" in config.phases.run else 0
    why = why_not_together(config.method, config.training)
    summary = {"setting": setting, "adapters": rates * len(seeds), "groups": 0, "why_not": why}
    if not groups_candidates(config.method, config.training) or rates < 2:
        auto = why is None and rates >= 2
        hint = " (training.candidates_together: auto would train its points together)"
        reason = f", but {why}" if setting and why else ""
        summary["described"] = (
            f"candidates: one trial at a time (training.candidates_together: {setting}{reason})"
            + (hint if auto and not setting else "")
        )
        return summary
    check = stack_check(config, runner)
    fits = [
        k for k in range(1, rates + 1) if check is None or check.fits(hp.batch_size, k * len(seeds))
    ]
    per_group = max(fits, default=1)
    groups = -(-rates // per_group)
    summary["groups"] = groups
    limit = "" if check is None else f" (the memory limit fits {per_group * len(seeds)})"
    summary["described"] = (
        f"candidates: {rates} rates x {len(seeds)} seeds: {rates * len(seeds)} adapters over "
        f"one base in {groups} group{'s' if groups > 1 else ''}{limit}; a phase's other "
        "queued points (local rates, racing's seeds) train together alike, never configurations "
        "of another batch, accumulation, epoch count or rank, nor those its sampler proposes"
    )
    return summary
