"""Looks within an epoch: the objective measured every ``training.eval_steps`` optimizer steps,
for the pruner (a run of one or two long epochs otherwise gives it nothing to look at).

The epoch's end stays the epoch's measurement (a seed's value, its checkpoint, early
stopping); a look is one more position on the seed's curve, between two epoch ends. Every
backend counts its optimizer steps and asks `EpochLooks.after_step` after each one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hptune.train._parallel import broadcast
from hptune.train._results import EpochCallback, EpochMetrics, RunResult

__all__ = ["EpochLooks", "looks_per_epoch", "replay_epoch"]


def looks_per_epoch(steps_per_epoch: int, eval_steps: int | None) -> int:
    """The positions one epoch adds to a seed's curve: its looks and its end.

    A look falls on every ``eval_steps``-th optimizer step before the epoch's last (the
    last is the epoch's own measurement).

    Args:
        steps_per_epoch: Optimizer steps in one epoch.
        eval_steps: ``training.eval_steps`` (None: no looks).

    Returns:
        1 without looks, else ``ceil(steps_per_epoch / eval_steps)``.
    """
    if not eval_steps or steps_per_epoch <= 1:
        return 1
    return math.ceil(steps_per_epoch / eval_steps)


def replay_epoch(
    on_epoch: EpochCallback | None, seed: int, metrics: EpochMetrics, per_epoch: int
) -> bool:
    """Hand a stored epoch (its looks, then its end) to ``on_epoch`` again, as a resumed
    run does; False when the callback stops the run there."""
    if on_epoch is None:
        return True
    look = getattr(on_epoch, "look", None)
    if look is not None:
        for value in metrics.looks:
            if look(seed, metrics.epoch, value, per_epoch) is False:
                return False
    return on_epoch(seed, metrics) is not False


class EpochLooks:
    """The looks of one run: when they fall, what they measured, whom they tell.

    Args:
        steps_per_epoch: Optimizer steps in one epoch.
        eval_steps: ``training.eval_steps`` (None: never looks).
        on_epoch: The run's epoch callback; its ``look`` method, if it has one, is told each
            look's value and may stop the run.
        measure: Measures the objective on the model (every process calls it).
    """

    def __init__(
        self,
        steps_per_epoch: int,
        eval_steps: int | None,
        on_epoch: EpochCallback | None,
        measure: Callable[[Any], float],
    ) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.per_epoch = looks_per_epoch(steps_per_epoch, eval_steps)
        self.eval_steps = eval_steps if self.per_epoch > 1 else None
        self.callback = getattr(on_epoch, "look", None)
        self.measure = measure
        self.values: list[float] = []  # this epoch's, until its end takes them

    def after_step(self, model: Any, result: RunResult, epoch: int, step: int) -> bool:
        """After optimizer step ``step`` (1-based, within ``epoch``): look if one falls here.

        Returns:
            False when the run ends at this look: its validation is not finite
            (``result.diverged``), or the callback stopped it (``result.stopped_early``).
        """
        if self.eval_steps is None or step % self.eval_steps or step >= self.steps_per_epoch:
            return True
        import torch

        # Measuring draws from the random state (each validation loader's base seed): a
        # look must not move the dropout stream, or looking would change the training.
        with torch.random.fork_rng():
            value = self.measure(model)
        model.train()
        if not math.isfinite(value):  # diverged, as at an epoch's end: skipping the look
            # would shift every later position of the curve against the other trials'.
            result.diverged, result.diverged_at = True, f"epoch {epoch}, step {step} (validation)"
            return False
        self.values.append(value)
        stop = self.callback is not None and (
            self.callback(result.seed, epoch, value, self.per_epoch) is False
        )
        if broadcast(stop):  # decided by process 0, as at an epoch's end
            result.stopped_early = True
            return False
        return True

    def close(self, metrics: EpochMetrics) -> EpochMetrics:
        """The epoch's end: its metrics carry the looks before it."""
        metrics.looks, self.values = self.values, []
        return metrics
