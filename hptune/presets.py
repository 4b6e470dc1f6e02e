"""The recommendation tables of the method, as data, with the lookups that fill a configuration.

Each value is a starting point, never a law: whatever the user sets wins, then a situation
preset, then these tables. `fill_training` records which source gave each value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BATCH_SIZE_BY_GPU_MEMORY",
    "DEFAULT_LEARNING_RATE_GRID",
    "DEVICE_NAMES",
    "EPOCHS_BY_TRAIN_SIZE",
    "GPUS",
    "LEARNING_RATE_BY_METHOD",
    "LEARNING_RATE_GRID_BY_METHOD",
    "SITUATIONS",
    "WARMUP_RATIO_RANGE",
    "WEIGHT_DECAY_RANGE",
    "Situation",
    "batch_size_range_for",
    "epochs_range_for",
    "fill_training",
    "learning_rate_for",
]

#: Learning rate by fine-tuning method (QLoRA from the Colab Free situation preset).
LEARNING_RATE_BY_METHOD: dict[str, float] = {"lora": 1e-4, "qlora": 2e-4, "full": 1e-5}

#: (GPU memory in GB at least, (smallest, largest) batch size); the first row that fits wins.
BATCH_SIZE_BY_GPU_MEMORY: list[tuple[float, tuple[int, int]]] = [
    (40, (16, 32)),
    (24, (8, 16)),
    (16, (4, 8)),
]

#: (training examples below, (fewest, most) epochs); the first row that fits wins.
EPOCHS_BY_TRAIN_SIZE: list[tuple[float, tuple[int, int]]] = [
    (1_000, (3, 5)),
    (10_000, (2, 3)),
    (float("inf"), (1, 2)),
]

#: Warmup as a fraction of all training steps.
WARMUP_RATIO_RANGE: tuple[float, float] = (0.05, 0.10)

#: Weight decay against overfitting.
WEIGHT_DECAY_RANGE: tuple[float, float] = (0.01, 0.1)

# The data sheet behind GPUS, one GPU a line.
_GPU_TABLE = """
name       memory  bfloat16  TFLOPS
t4             16        no      65
v100-16gb      16        no     125
v100-32gb      32        no     125
a10g           24       yes      70
l4             24       yes     121
rtx3090        24       yes      71
rtx4090        24       yes     165
a100-40gb      40       yes     312
l40s           48       yes     362
a100-80gb      80       yes     312
h100           80       yes     989
h200          141       yes     989
"""
#: Known GPUs by the name ``training.device`` takes: (memory in GB as sold, bfloat16
#: supported, dense 16-bit tensor TFLOPS from the maker's data sheet). torch sees a little
#: less memory (an A100 80GB shows 79.2 GiB); the batch phase's safety margin covers the gap.
#: A GPU not listed is ``cuda`` with ``training.gpu_memory_gb``.
GPUS: dict[str, tuple[float, bool, float]] = {
    name: (int(memory), bfloat16 == "yes", int(tflops))
    for name, memory, bfloat16, tflops in (
        line.split() for line in _GPU_TABLE.strip().splitlines()[1:]
    )
}

#: The devices ``training.device`` accepts: the CPU, any CUDA GPU, or a GPU by name.
DEVICE_NAMES: tuple[str, ...] = ("cpu", "cuda", *GPUS)

#: The learning-rate grid of phase 2 for each method (7B-scale models), around its preset
#: rate and under its danger level (``hptune.guardrails.DANGER_LEARNING_RATE``): the
#: lecture's grid is 1e-5, 5e-5, 1e-4, 5e-4, but its own table shows 5e-4 diverging for LoRA,
#: so the top rate is 3x the preset; a best rate at the top is extended past it (x2).
LEARNING_RATE_GRID_BY_METHOD: dict[str, tuple[float, ...]] = {
    "lora": (1e-5, 5e-5, 1e-4, 3e-4),
    "qlora": (2e-5, 1e-4, 2e-4, 6e-4),
    "full": (1e-6, 5e-6, 1e-5, 3e-5),
}
#: LoRA's grid, the default where no method is known.
DEFAULT_LEARNING_RATE_GRID: tuple[float, ...] = LEARNING_RATE_GRID_BY_METHOD["lora"]


@dataclass(frozen=True)
class Situation:
    """A starting configuration for a common hardware situation."""

    description: str
    gpu_memory_gb: float
    method: str
    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    epochs: int
    device: str | None = None  # the GPU in training.device's names, where one is meant


SITUATIONS: dict[str, Situation] = {
    "colab_pro": Situation("Google Colab Pro (16 GB)", 16, "lora", 1e-4, 4, 4, 3, "v100-16gb"),
    "colab_free": Situation("Google Colab Free (12 GB)", 12, "qlora", 2e-4, 8, 2, 3, "t4"),
    "aws_a100": Situation("AWS A100 (40 GB)", 40, "lora", 1e-4, 16, 2, 2, "a100-40gb"),
}

# Below the smallest table row (or on a CPU) the batch starts where the 16 GB row starts.
_SMALL_MEMORY_BATCH = (4, 8)


def learning_rate_for(method: str) -> float:
    """The recommended learning rate for ``method`` (``lora``, ``qlora`` or ``full``)."""
    if method not in LEARNING_RATE_BY_METHOD:
        raise ValueError(f"unknown fine-tuning method {method=}; use one of lora, qlora, full")
    return LEARNING_RATE_BY_METHOD[method]


def batch_size_range_for(gpu_memory_gb: float | None) -> tuple[int, int]:
    """The recommended batch-size range for a GPU with ``gpu_memory_gb`` GB (None: no GPU)."""
    if gpu_memory_gb is None:
        return _SMALL_MEMORY_BATCH
    if gpu_memory_gb <= 0:
        raise ValueError(f"gpu_memory_gb must be positive, got {gpu_memory_gb=}")
    for at_least, batch_range in BATCH_SIZE_BY_GPU_MEMORY:
        # A GPU sold as 24 GB shows about 23.6 GiB: its row is the 24 GB one.
        if math.ceil(gpu_memory_gb) >= at_least:
            return batch_range
    return _SMALL_MEMORY_BATCH


def epochs_range_for(n_train_examples: int) -> tuple[int, int]:
    """The recommended epoch range for a training set of ``n_train_examples`` examples."""
    if n_train_examples <= 0:
        raise ValueError(f"the training set must not be empty, got {n_train_examples=}")
    for below, epoch_range in EPOCHS_BY_TRAIN_SIZE:
        if n_train_examples < below:
            return epoch_range
    raise AssertionError("unreachable: the last row has no upper bound")


def fill_training(
    user_values: dict[str, Any],
    *,
    method: str,
    situation: str | None,
    gpu_memory_gb: float | None,
    n_train_examples: int,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Fill the unset training values; return the values and where each came from.

    Precedence: the user's value, then the situation preset, then the tables. Batch sizes and
    epochs take the low end of their ranges: the method says to start small and widen.
    """
    preset = SITUATIONS[situation] if situation else None
    if preset is not None and gpu_memory_gb is None:
        gpu_memory_gb = preset.gpu_memory_gb
    table = {
        "learning_rate": (learning_rate_for(method), f"table: learning rate for {method}"),
        "batch_size": (
            batch_size_range_for(gpu_memory_gb)[0],
            f"table: batch size for {gpu_memory_gb or 'no'} GB GPU memory",
        ),
        "gradient_accumulation_steps": (1, "default"),
        "epochs": (
            epochs_range_for(n_train_examples)[0],
            f"table: epochs for {n_train_examples} training examples",
        ),
        "warmup_ratio": (WARMUP_RATIO_RANGE[0], "table: warmup 5-10% of steps"),
        "weight_decay": (WEIGHT_DECAY_RANGE[0], "table: weight decay 0.01-0.1"),
    }
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, (table_value, table_source) in table.items():
        if user_values.get(key) is not None:
            values[key], sources[key] = user_values[key], "config"
        elif preset is not None and hasattr(preset, key):
            values[key], sources[key] = getattr(preset, key), f"situation: {situation}"
        else:
            values[key], sources[key] = table_value, table_source
    return values, sources
