"""Epoch checkpoints with a retention policy: the best and the last epoch of each run.

A checkpoint is what ``save_pretrained`` writes (safetensors: the LoRA adapter, or the whole
model for full fine-tuning) plus ``metrics.json``. Every change is a rename, so a kill at any
moment leaves each ``epoch-N`` directory either whole or absent:

- a checkpoint is written to ``.epoch-N.tmp`` and renamed to ``epoch-N``;
- a checkpoint is removed by renaming it to ``.epoch-N.del`` first, then deleting that.

Leftover ``.tmp`` and ``.del`` directories of a killed process are removed when a run next
starts in the directory (`remove_leftovers`). Checkpoints are read back only through
safetensors (`load_weights`): a pickle file in a checkpoint is refused, never loaded.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from hptune._lazy import safetensors_torch, torch
from hptune.exceptions import HptuneError

__all__ = [
    "TRAINING_STATE",
    "CheckpointError",
    "checkpoint_path",
    "drop_training_state",
    "latest_checkpoint",
    "load_weights",
    "remove_checkpoints",
    "remove_leftovers",
    "retain_best_and_last",
    "run_name",
    "save_checkpoint",
]

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
#: The optimizer / scheduler / random state beside the weights, read with weights_only=True.
TRAINING_STATE = "training_state.pt"


class CheckpointError(HptuneError):
    """A checkpoint is missing, incomplete, or in a format hptune does not load (pickle)."""


def run_name(study_name: str, trial_number: int) -> str:
    """A trial's name in the storage and on disk: ``<study>/trial-<n>``.

    Args:
        study_name: The phase's study.
        trial_number: The trial's number in it.

    Returns:
        The name its checkpoints and tracker logs go under.
    """
    return f"{study_name}/trial-{trial_number}"


def checkpoint_path(output_dir: str | Path, name: str, seed: int | None = None) -> Path:
    """Where epoch checkpoints go: ``<output_dir>/checkpoints/<name>[/seed-<seed>]``.

    Args:
        output_dir: The run's ``output_dir``.
        name: A trial's `run_name` (its seeds' folders), or a study's name (its trials').
        seed: One seed's folder of the trial.

    Returns:
        The folder (it may not exist).
    """
    path = Path(output_dir) / "checkpoints" / name
    return path if seed is None else path / f"seed-{seed}"


def save_checkpoint(
    model: Any,
    run_dir: Path,
    epoch: int,
    metrics: dict[str, Any],
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` as ``run_dir/epoch-<epoch>`` (safetensors) with its metrics and, for a
    resume, the ``training_state`` (optimizer, scheduler, random state: tensors and plain
    values only, so it loads with ``torch.load(weights_only=True)``)."""
    final = run_dir / f"epoch-{epoch}"
    temporary = run_dir / f".epoch-{epoch}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    with warnings.catch_warnings():
        # peft looks for the base's config.json to tell whether the vocabulary changed; a GGUF
        # base has none (hptune never resizes the vocabulary), so its warning says nothing
        warnings.filterwarnings("ignore", "Could not find a config file", UserWarning)
        model.save_pretrained(temporary, safe_serialization=True)
    (temporary / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if training_state is not None:
        torch.save(training_state, temporary / TRAINING_STATE)
    if final.exists():
        _discard(final)
    temporary.rename(final)
    return final


def _discard(path: Path) -> None:
    """Delete a checkpoint directory so that no half-deleted ``epoch-N`` can remain."""
    doomed = path.with_name(f".{path.name}.del")
    shutil.rmtree(doomed, ignore_errors=True)
    path.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def remove_leftovers(run_dir: Path) -> int:
    """Remove what a killed save or delete left in ``run_dir``; return how many."""
    leftovers = [*run_dir.glob(".epoch-*.tmp"), *run_dir.glob(".epoch-*.del")]
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    return len(leftovers)


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
        _discard(run_dir / f"epoch-{epoch}")
    remove_leftovers(run_dir)
    drop_training_state(run_dir, keep_last=True)  # a resume starts from the last only
    return sorted(keep)


def drop_training_state(run_dir: Path, *, keep_last: bool = False) -> None:
    """Remove the resume state (as large as twice the trained weights for AdamW) from the
    checkpoints of ``run_dir``: all of them once the run has finished, else all but the last."""
    newest = latest_checkpoint(run_dir) if keep_last else None
    for state in run_dir.glob(f"epoch-*/{TRAINING_STATE}"):
        if state.parent != newest:
            state.unlink(missing_ok=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``epoch-N`` of ``run_dir`` (every one there is complete), or None."""
    found = [p for p in run_dir.glob("epoch-*") if p.name.removeprefix("epoch-").isdigit()]
    return max(found, key=lambda p: int(p.name.removeprefix("epoch-")), default=None)


def load_weights(checkpoint: Path) -> dict[str, Any]:
    """The tensors of a checkpoint, read through safetensors only (no code can run).

    Raises `CheckpointError` when the directory holds no ``.safetensors`` file,
    naming any pickle-based weight file it refused to load.
    """
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in checkpoint.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        refused = ""
        if pickled:
            refused = f" ({', '.join(pickled)}: pickle, refused, as loading it can run code)"
        raise CheckpointError(
            f"{checkpoint} holds no .safetensors weights{refused}; hptune reads checkpoints "
            "only as safetensors: re-save the model with save_pretrained(..., "
            "safe_serialization=True)"
        )
    weights: dict[str, Any] = {}
    for path in files:
        weights.update(safetensors_torch.load_file(path))
    return weights


def remove_checkpoints(trial_dir: Path) -> None:
    """Remove a trial's checkpoints (it was pruned, diverged or ran out of memory)."""
    shutil.rmtree(trial_dir, ignore_errors=True)
