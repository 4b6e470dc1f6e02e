"""What a run changes as it trains, saved with each epoch checkpoint, and the resume from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hptune._lazy import peft, torch
from hptune.train._divergence import DivergenceWatch
from hptune.train._looks import replay_epoch
from hptune.train._results import EpochCallback, RunResult
from hptune.train.checkpoints import TRAINING_STATE, latest_checkpoint, load_weights


@dataclass
class _RunState:
    """What a run changes as it trains, beyond its weights and data order: saved with each
    epoch checkpoint so that an interrupted run can go on exactly where it stopped."""

    model: Any
    optimizer: Any
    scheduler: Any
    watch: DivergenceWatch

    def training_state(self, result: RunResult) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "watch": {"first": list(self.watch.first), "average": self.watch.average},
            "result": {
                **result.to_dict(),
                "train_examples": result.train_examples,
                "train_tokens": result.train_tokens,
            },
        }


def _resume(
    accelerator: Any,
    run: _RunState,
    result: RunResult,
    checkpoint_dir: Path,
    on_epoch: EpochCallback | None,
    per_epoch: int = 1,
) -> int | None:
    """Restore ``run`` from the last epoch checkpoint in ``checkpoint_dir``; the epochs done.

    None when there is nothing to resume from (no checkpoint, or one without training state).
    The earlier epochs (each with its ``per_epoch - 1`` looks) are replayed through
    ``on_epoch``, which may stop the run there.
    """
    checkpoint = latest_checkpoint(checkpoint_dir) if checkpoint_dir.is_dir() else None
    if checkpoint is None or not (checkpoint / TRAINING_STATE).is_file():
        return None
    state = torch.load(checkpoint / TRAINING_STATE, weights_only=True)
    model = accelerator.unwrap_model(run.model)
    weights = load_weights(checkpoint)
    if hasattr(model, "peft_config"):
        peft.set_peft_model_state_dict(model, weights)
    else:
        model.load_state_dict(weights, strict=False)  # tied weights are saved once
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    # The data order needs no state: epoch e's permutation is seeded by seed + e.
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    run.watch.first, run.watch.average = list(state["watch"]["first"]), state["watch"]["average"]
    saved = RunResult.from_dict(state["result"])
    result.seconds = saved.seconds
    result.train_examples = int(state["result"]["train_examples"])
    result.train_tokens = int(state["result"]["train_tokens"])
    result.resumed_after = len(saved.epochs)
    result.resumed_seconds = saved.seconds
    for metrics in saved.epochs:
        result.epochs.append(metrics)
        if not replay_epoch(on_epoch, result.seed, metrics, per_epoch):
            result.stopped_early = True
            break
    return len(saved.epochs)
