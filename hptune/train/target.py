"""The machine a run is planned for, and what fits on it.

``hptune plan`` often runs where the training will not: a laptop or a CPU login node planning
for a cluster's A100. ``training.device`` names that machine (``cpu``, ``cuda``, or a GPU
from `GPUS`) and ``training.gpu_memory_gb`` its memory; left out, the machine hptune
runs on is the target. The target decides the memory a training step may use, the batch
presets' row, and the dtype ``model.dtype: auto`` loads in; `memory_check` puts it
together with the memory model of the configured model and method.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hptune.presets import GPUS, SITUATIONS
from hptune.train.memory import MemoryModel

if TYPE_CHECKING:
    from hptune.config import ModelConfig, TuneConfig
    from hptune.train.runner import RunnerBase

#: The share of a GPU's peak FLOPS a fine-tuning step is taken to use for a throughput
#: estimate (LoRA at modest batches reaches 20-40%); only a plan uses it, the run measures.
MODEL_FLOPS_UTILIZATION = 0.3

__all__ = [
    "MODEL_FLOPS_UTILIZATION",
    "MemoryCheck",
    "Target",
    "memory_check",
    "memory_model",
    "resolve_target",
    "stack_check",
    "throughput_estimate",
]


@dataclass(frozen=True)
class Target:
    """The machine a run is planned for.

    Args:
        kind: ``cuda`` or ``cpu``.
        name: The device in words, e.g. ``a100-80gb`` or ``NVIDIA H200 (this machine)``.
        memory_gb: Its memory in GiB (``training.gpu_memory_gb`` wins); None when unknown
            (a CPU, or ``cuda`` with no memory given and no GPU here).
        bf16: Whether it trains in bfloat16 (Ampere and later); float16 otherwise.
        source: Where the description came from: ``training.device`` or ``this machine``.
        tflops: Its dense 16-bit tensor TFLOPS, for a throughput estimate; None: unknown.
    """

    kind: Literal["cuda", "cpu"]
    name: str
    memory_gb: float | None
    bf16: bool
    source: str
    tflops: float | None = None

    def examples_per_second(
        self, *, parameters: int, full: bool, checkpointing: bool, tokens_per_example: float
    ) -> float | None:
        """A rough training throughput from the GPU's speed; None without one.

        A token costs ``2 x parameters`` FLOPs forward and as many again backward through
        the activations; full fine-tuning adds the weights' gradients (another 2x), and
        gradient checkpointing a second forward. The GPU is taken to reach
        `MODEL_FLOPS_UTILIZATION` of its peak.

        Args:
            parameters: The model's parameters.
            full: Full fine-tuning (every weight gets a gradient).
            checkpointing: Gradient checkpointing (one more forward).
            tokens_per_example: Mean tokens of a training example.

        Returns:
            Examples per second, or None (a CPU, or a GPU whose speed is not known).
        """
        if self.tflops is None or parameters <= 0 or tokens_per_example <= 0:
            return None
        passes = 2 + (1 if full else 0) + (1 if checkpointing else 0)  # forward = 1 pass
        flops_per_token = 2 * parameters * passes
        rate = MODEL_FLOPS_UTILIZATION * self.tflops * 1e12 / flops_per_token
        return rate / tokens_per_example

    def dtype(self, model: ModelConfig) -> str:
        """The dtype the weights load in on this target (``model.dtype: auto`` resolved).

        Args:
            model: The model section (its ``dtype``).

        Returns:
            ``bfloat16``, ``float16`` or ``float32``.
        """
        if model.dtype != "auto":
            return model.dtype
        if self.kind == "cpu":
            return "float32"
        return "bfloat16" if self.bf16 else "float16"

    def to_dict(self, model: ModelConfig) -> dict[str, Any]:
        """The target with the dtype assumed for ``model`` (JSON-serialisable).

        Args:
            model: The model section (its ``dtype``).

        Returns:
            ``name``, ``kind``, ``memory_gb``, ``dtype``, ``tflops``, ``source`` and
            ``described`` (one line, e.g. ``a100-80gb, 80 GiB, bfloat16 (training.device)``).
        """
        memory = "memory unknown" if self.memory_gb is None else f"{self.memory_gb:g} GiB"
        dtype = self.dtype(model)
        return {
            "name": self.name,
            "kind": self.kind,
            "memory_gb": self.memory_gb,
            "dtype": dtype,
            "tflops": self.tflops,
            "source": self.source,
            "described": f"{self.name}, {memory}, {dtype} ({self.source})",
        }


def resolve_target(config: TuneConfig) -> Target:
    """The machine ``config`` is planned for: ``training.device``, else the situation
    preset's GPU, else this machine; ``training.gpu_memory_gb`` overrides its memory.

    Args:
        config: The run's configuration (``training.device``, ``training.situation`` and
            ``training.gpu_memory_gb``).

    Returns:
        The target.
    """
    training = config.training
    device, source = training.device, "training.device"
    if device is None and training.situation is not None:
        device, source = SITUATIONS[training.situation].device, "training.situation"
    if device in GPUS:
        memory, bf16, tflops = GPUS[device]
        target = Target("cuda", device, memory, bf16, source, tflops)
        if source == "training.situation":  # the preset's memory (Colab Free: 12 GB)
            memory = SITUATIONS[training.situation or ""].gpu_memory_gb
            target = Target("cuda", device, memory, bf16, source, tflops)
    elif device == "cpu":
        target = Target("cpu", "cpu", None, False, "training.device")
    else:  # "cuda" or left out: this machine's GPU where it has one
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            memory = round(props.total_memory / 2**30, 1)
            target = Target(
                "cuda",
                f"{props.name} (this machine)",
                memory,
                torch.cuda.is_bf16_supported(),
                "this machine",
                _known_tflops(props.name),
            )
        elif device == "cuda":
            target = Target("cuda", "cuda", None, True, "training.device")
        else:
            target = Target("cpu", "cpu (this machine)", None, False, "this machine")
    if training.gpu_memory_gb is not None:
        source = f"{target.source}; memory from training.gpu_memory_gb"
        return Target(
            target.kind, target.name, training.gpu_memory_gb, target.bf16, source, target.tflops
        )
    return target


def _known_tflops(name: str) -> float | None:
    """The TFLOPS of the `GPUS` entry a device name (``NVIDIA GeForce RTX 4090``,
    ``NVIDIA L40S``) names: the longest model name made of whole words of it (``RTX 4090``
    reads as ``rtx4090``), so that ``L40`` is not taken for ``L4``."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    spans = {"".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}
    models = {key.split("-")[0]: values[2] for key, values in GPUS.items()}
    found = [model for model in models if model in spans]
    return models[max(found, key=len)] if found else None


@dataclass(frozen=True)
class MemoryCheck:
    """The memory model of a configured run against the memory a step may use.

    Args:
        target: The machine planned for.
        model: The predicted peak memory of a training step by batch size.
        limit_bytes: The memory a step may use (``phases.batch_size.memory_limit_gb``, else
            the target's memory).
        safety_margin: The share of the limit a prediction may use.
    """

    target: Target
    model: MemoryModel
    limit_bytes: float
    safety_margin: float

    @property
    def usable_bytes(self) -> float:
        """The limit times the safety margin."""
        return self.limit_bytes * self.safety_margin

    def fits(self, batch_size: int, seeds: int = 1) -> bool:
        """Whether a step at ``batch_size`` (of ``seeds`` trained together) is predicted to
        fit within the margin."""
        return self.model.predict(batch_size, seeds) <= self.usable_bytes

    def largest_batch(self) -> int:
        """The largest batch predicted to fit (0 when not even batch 1 fits)."""
        room = self.usable_bytes - self.model.fixed
        if room < self.model.per_example:
            return 0
        return math.floor(room / self.model.per_example)

    def gb(self, batch_size: int) -> float:
        """The predicted peak memory at ``batch_size``, in GiB."""
        return self.model.predict(batch_size) / 2**30


def memory_check(
    config: TuneConfig,
    runner: RunnerBase,
    *,
    probe: bool = False,
    target: Target | None = None,
    model: MemoryModel | None = None,
) -> MemoryCheck | None:
    """The memory model of ``config``'s model and method on its target, with the limit.

    The model is built on the meta device from ``config.json`` (no weights are loaded),
    at the target's dtype and the longest training example.

    Args:
        config: The run's configuration.
        runner: The run's trainer: the longest training example, and the memory probe.
        probe: Calibrate the model on two small steps (on a GPU only; see
            `hptune.train.memory.MemoryModel.calibrated`).
        target: The target, when already resolved.
        model: The memory model, when already built (not calibrated by ``probe`` again).

    Returns:
        The check; None when no limit is known (a CPU with no configured limit).
    """
    target = target or resolve_target(config)
    limit_gb = config.phases.batch_size.memory_limit_gb or target.memory_gb
    if limit_gb is None:
        return None
    model = model or memory_model(config, runner, probe=probe, target=target)
    return MemoryCheck(target, model, limit_gb * 2**30, config.phases.batch_size.safety_margin)


def stack_check(config: TuneConfig, runner: RunnerBase) -> MemoryCheck | None:
    """The memory check for LoRA adapters stacked in one step (seeds or candidates trained
    together): `memory_check` on a GPU; None on a CPU.

    A CPU has no device memory: there ``phases.batch_size.memory_limit_gb`` stands in for a
    GPU the batch phase chooses a batch for (as the demo's does), and a stack trains in the
    machine's own memory. On a GPU the limit is the memory any step may use, stacks included.

    Args:
        config: The run's configuration.
        runner: The run's trainer.

    Returns:
        The check; None when no limit bounds a stack.
    """
    if resolve_target(config).kind == "cpu":
        return None
    return memory_check(config, runner)


def memory_model(
    config: TuneConfig, runner: RunnerBase, *, probe: bool = False, target: Target | None = None
) -> MemoryModel:
    """The memory model of ``config``'s model and method on its target (limit or not).

    Args:
        config: The run's configuration.
        runner: The run's trainer: the longest training example, and the memory probe.
        probe: Calibrate the model on two small steps (on a GPU only).
        target: The target, when already resolved.

    Returns:
        The model, at the target's dtype and the longest training example (with packing,
        ``data.max_length``: a packed row fills it).
    """
    target = target or resolve_target(config)
    # Packed rows (TRL's packing) fill data.max_length whatever the examples' lengths; a
    # space that may search packing on plans for packed rows.
    searched = config.phases.regularization.space.get("packing")
    packing = bool(config.training.args.get("packing")) or (
        isinstance(searched, list) and any(bool(v) for v in searched)
    )
    model = MemoryModel.for_model(
        config.model,
        config.method,
        sequence_length=config.data.max_length if packing else runner.data.max_train_length,
        gradient_checkpointing=config.training.gradient_checkpointing,
        dtype=target.dtype(config.model),
    )
    return model.calibrated(runner.probe_memory([1, 2])) if probe else model


def throughput_estimate(
    config: TuneConfig,
    runner: RunnerBase,
    *,
    target: Target | None = None,
    model: MemoryModel | None = None,
) -> tuple[float, str] | None:
    """Training examples per second per GPU to plan a GPU-hour budget with, and its source.

    ``budget.examples_per_second`` when given; else an estimate from the target GPU's speed
    (see `Target.examples_per_second`); else None (a CPU, or an unknown GPU).

    Args:
        config: The run's configuration.
        runner: The run's trainer: the training examples' lengths.
        target: The target, when already resolved.
        model: The memory model, when already built (its parameter count).

    Returns:
        ``(examples per second, source in words)``, or None.
    """
    budget = config.budget
    if budget is not None and budget.examples_per_second is not None:
        return budget.examples_per_second, "budget.examples_per_second"
    target = target or resolve_target(config)
    if target.tflops is None:
        return None
    lengths = runner.data.train_lengths
    model = model or memory_model(config, runner, target=target)
    rate = target.examples_per_second(
        parameters=model.parameters,
        full=config.method.type == "full",
        checkpointing=config.training.gradient_checkpointing,
        tokens_per_example=sum(lengths) / max(len(lengths), 1),
    )
    if rate is None:
        return None
    return rate, (
        f"estimated from {target.name}'s {target.tflops:g} TFLOPS at "
        f"{MODEL_FLOPS_UTILIZATION:.0%} use"
    )
