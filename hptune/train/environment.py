"""What a run ran on: library versions and device, recorded with each phase's study."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from hptune.train.arguments import mixed_precision

__all__ = ["LIBRARIES", "describe_environment"]

#: The libraries whose versions change what a trial computes.
LIBRARIES = (
    "hptune",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "optuna",
    "sacrebleu",
    "bitsandbytes",
    "trl",
)


def describe_environment() -> dict[str, Any]:
    """Python, platform, library versions, the training device and its mixed precision."""
    import torch

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue  # optional (bitsandbytes) or not installed as a distribution
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        device = (
            f"cuda: {props.name}, {props.total_memory / 2**30:.1f} GiB, "
            f"{torch.cuda.device_count()} GPU(s), CUDA {torch.version.cuda}"
        )
    else:
        device = f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "precision": mixed_precision(),  # the Trainer's bf16 / fp16, or "no"
        "versions": versions,
    }
