"""The baseline configuration: the user's values, filled from the presets, fitted to memory.

The presets (``hptune.presets``) are tables; this module reads them for one configuration
and one target's memory model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.hparams import HParams
from hptune.presets import fill_training

if TYPE_CHECKING:
    from hptune.config import TuneConfig
    from hptune.train.target import MemoryCheck

__all__ = ["resolve_hparams"]


def resolve_hparams(
    config: TuneConfig, n_train: int, memory: MemoryCheck | None = None
) -> tuple[HParams, dict[str, str]]:
    """The baseline configuration: the user's values, filled from the presets.

    The presets' batch size is checked against the memory model: when it is predicted not
    to fit, it is lowered to the largest divisor of the effective batch that fits and the
    gradient accumulation raised, so the effective batch stays (a batch the user set is
    kept as set; the ``batch_over_memory`` guardrail speaks of it).

    Args:
        config: The run's configuration (its ``training`` and ``method`` sections).
        n_train: Training examples (the epochs preset depends on it).
        memory: The memory model against the target's limit; None keeps the presets' batch.

    Returns:
        The configuration, and for each filled key the preset it came from.
    """
    training = config.training
    gpu_memory_gb = training.gpu_memory_gb
    if gpu_memory_gb is None and memory is not None and memory.target.kind == "cuda":
        gpu_memory_gb = memory.target.memory_gb
    values, sources = fill_training(
        training.model_dump(),
        method=config.method.type,
        situation=training.situation,
        gpu_memory_gb=gpu_memory_gb,
        n_train_examples=n_train,
    )
    if memory is not None and sources["batch_size"] != "config":
        _fit_batch(values, sources, memory)
    hp = HParams(**values, scheduler=training.scheduler, max_grad_norm=training.max_grad_norm)
    return hp, sources


def _fit_batch(values: dict[str, Any], sources: dict[str, str], memory: MemoryCheck) -> None:
    batch, accumulation = values["batch_size"], values["gradient_accumulation_steps"]
    effective = batch * accumulation
    fitting = [b for b in range(min(batch, memory.largest_batch()), 0, -1) if effective % b == 0]
    if memory.fits(batch) or not fitting:
        return  # it fits, or nothing does: the batch_over_memory guardrail says so
    lowered = fitting[0]
    values["batch_size"] = lowered
    values["gradient_accumulation_steps"] = effective // lowered
    sources["batch_size"] += (
        f"; lowered from {batch} (predicted {memory.gb(batch):.3g} GiB) to fit "
        f"{memory.usable_bytes / 2**30:.3g} GiB on {memory.target.name}"
    )
    sources["gradient_accumulation_steps"] = (
        f"raised from {accumulation} to keep the effective batch {effective}"
    )
