"""Epoch checkpoints with a retention policy: the best and the last epoch of each run.

A checkpoint is what ``save_pretrained`` writes (safetensors: the LoRA adapter, or the whole
model for full fine-tuning) plus ``metrics.json``. It is written to a temporary directory and
renamed, so a kill never leaves a half-written ``epoch-N``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["remove_checkpoints", "retain_best_and_last", "save_checkpoint"]


def save_checkpoint(model: Any, run_dir: Path, epoch: int, metrics: dict[str, Any]) -> Path:
    """Save ``model`` as ``run_dir/epoch-<epoch>`` (safetensors) with its metrics."""
    final = run_dir / f"epoch-{epoch}"
    temporary = run_dir / f".epoch-{epoch}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    model.save_pretrained(temporary, safe_serialization=True)
    (temporary / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    temporary.rename(final)
    return final


def retain_best_and_last(run_dir: Path, metric: str, direction: str) -> list[int]:
    """Delete every epoch checkpoint of ``run_dir`` but the best and the last; return kept."""
    epochs: dict[int, float] = {}
    for path in run_dir.glob("epoch-*"):
        values = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        if values.get(metric) is not None:
            epochs[int(path.name.removeprefix("epoch-"))] = float(values[metric])
    if not epochs:
        return []
    choose = min if direction == "minimize" else max
    keep = {max(epochs), choose(epochs, key=lambda e: epochs[e])}
    for epoch in set(epochs) - keep:
        shutil.rmtree(run_dir / f"epoch-{epoch}", ignore_errors=True)
    for leftover in run_dir.glob(".epoch-*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    return sorted(keep)


def remove_checkpoints(trial_dir: Path) -> None:
    """Remove a trial's checkpoints (it was pruned, diverged or ran out of memory)."""
    shutil.rmtree(trial_dir, ignore_errors=True)
