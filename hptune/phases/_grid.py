"""Grid phases: every point of a fixed grid queued once, the sampler never consulted."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from hptune._lazy import optuna
from hptune.phases._accounting import grid_remaining
from hptune.phases._ranked import RankedPhase

if TYPE_CHECKING:
    from hptune.hparams import HParams

__all__ = ["GridPhase"]


class GridPhase(RankedPhase):
    """A phase that tries each point of a grid exactly once (learning rates, epoch counts,
    LoRA ranks): every point is queued with its values fixed, so each runs once even with many
    workers, and a failed point is retried up to ``max_retries`` times.

    Subclasses give the points (:meth:`grid_points`); what a phase adds beyond its grid (the
    learning rate's edge extensions) goes through ``suggest`` as usual. It decides by the
    ranking template (``RankedPhase``).
    """

    @abc.abstractmethod
    def grid_points(self) -> list[dict[str, Any]]:
        """The grid, in the order its points are queued.

        Returns:
            One parameter dict per point, each with the same keys.
        """

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        # Every point is queued by initial_params, so the sampler is never consulted.
        return optuna.samplers.RandomSampler(seed=0)

    def initial_params(self, base: HParams) -> list[dict[str, Any]]:
        return self.grid_points()

    def n_trials(self) -> int:
        return len(self.grid_points())

    def n_remaining(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        points = self.grid_points()
        names = tuple(points[0])
        values = [tuple(point[name] for name in names) for point in points]
        return grid_remaining(trials, names, values, self.max_retries)
