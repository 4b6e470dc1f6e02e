"""What a trial reports, epoch by epoch, and the seeds' curves the objective follows.

A trial trains its configuration on several seeds, in turn or together
(``training.seeds_together``), and reports on two channels:

- **Optuna's** (``trial.report(value, step)``, one value per step): seed ``i``'s epoch ``e``
  is step ``i x stride + e`` (``stride``: the phase's longest schedule, in epochs), and its
  value is the mean, over seeds ``0..i``, of each seed's best value up to epoch ``e`` (a seed
  stopped early keeps its best). So step ``e`` is seed 0 alone, step ``stride + e`` the first
  two seeds, and the last seed's steps the whole trial's mean: the curve optuna-dashboard's
  intermediate-value plot draws, the same whether the seeds trained in turn or together, and
  the one a plain Optuna pruner (``optuna.pruners.MedianPruner``) prunes on. A racing trial
  (extra seeds for a configuration not yet told apart) reports nothing there.
- **The paired pruner's** (``keys.SEED_CURVES``, ``report_seed_epoch``): every seed's own
  value after every epoch (and look within an epoch), which ``hptune.search.PairedPruner``
  compares seed by seed with the earlier trials.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune.seeds import best_so_far

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["Curves", "SeedProgress", "report_seed_epoch", "seed_curves"]

#: A trial's curves: ``[[seed, [value of epoch 1, epoch 2, ...]], ...]`` in training order.
Curves = list[tuple[int, list[float]]]


def report_seed_epoch(trial: optuna.Trial, seed: int, value: float) -> None:
    """Record one epoch's validation value of ``seed`` for ``PairedPruner``.

    Call it after every epoch of every seed, then ``trial.report(...)`` and
    ``trial.should_prune()`` as usual. Seeds go one after the other, or side by side when
    the trial's ``seeds_together`` user attribute is true (each value joins its seed's curve).

    Args:
        trial: The running trial.
        seed: The seed being trained.
        value: Its validation value after this epoch.

    Raises:
        ValueError: A value that is not finite.
    """
    if not math.isfinite(value):
        raise ValueError(f"the value must be finite, got {value=}")
    curves: Curves = [
        (int(s), [float(x) for x in v]) for s, v in trial.user_attrs.get(keys.SEED_CURVES, [])
    ]
    mine = [values for s, values in curves if s == seed]
    if mine and (curves[-1][0] == seed or trial.user_attrs.get(keys.SEEDS_TOGETHER)):
        mine[-1].append(float(value))
    else:
        curves.append((seed, [float(value)]))
    trial.set_user_attr(keys.SEED_CURVES, [[s, v] for s, v in curves])


def seed_curves(trial: FrozenTrial) -> Curves:
    """The curves ``report_seed_epoch`` recorded on ``trial``.

    Args:
        trial: A trial.

    Returns:
        Each seed with its per-epoch values, in training order.
    """
    return [(int(s), [float(x) for x in v]) for s, v in trial.user_attrs.get(keys.SEED_CURVES, [])]


class SeedProgress:
    """Each seed's best-so-far curve, for reports, early stopping and pruning.

    Args:
        stride: The steps one seed takes on the trial's reported curve (the phase's longest
            schedule, in epochs): seed ``i``'s epoch ``e`` is step ``i x stride + e``.
        direction: ``"minimize"`` or ``"maximize"``.
        reports: Whether steps are reported (``trial.report``) and the pruner asked (not for
            a racing trial).
    """

    def __init__(self, stride: int, direction: str, *, reports: bool = True) -> None:
        self.stride = stride
        self.reports = reports
        self.minimize = direction == "minimize"
        self.values: list[list[float]] = []  # each seed's values, epoch by epoch
        self.best_so_far: list[list[float]] = []
        self.pruned = False
        self.pruned_at: dict[str, Any] | None = None

    def report(
        self, trial: optuna.Trial, seed: int, seed_index: int, epoch: int, value: float
    ) -> int:
        """Record the seed's epoch on both channels (Optuna's unless racing: see the module).

        Args:
            trial: The running trial.
            seed: The seed.
            seed_index: Its place in the trial's seeds.
            epoch: The epoch that ended (from 1).
            value: The seed's validation value after it.

        Returns:
            The step of Optuna's channel it is (reported there unless ``reports`` is false).
        """
        self.record(seed_index, value)
        report_seed_epoch(trial, seed, value)
        step = seed_index * self.stride + epoch
        if self.reports:
            trial.report(self.running_mean(seed_index, epoch), step=step)
        return step

    def record(self, seed_index: int, value: float) -> None:
        """Add the value of the seed's next epoch."""
        while len(self.values) <= seed_index:
            self.values.append([])
            self.best_so_far.append([])
        self.values[seed_index].append(value)
        self.best_so_far[seed_index] = best_so_far(self.values[seed_index], minimize=self.minimize)

    def has_reports(self, seed_indices: range) -> bool:
        """Whether any of these seeds has reported an epoch."""
        return any(i < len(self.best_so_far) and self.best_so_far[i] for i in seed_indices)

    def running_mean(self, seed_index: int, epoch: int) -> float:
        """The value reported at the seed's epoch: the mean, over seeds ``0..seed_index``, of
        each one's best value up to ``epoch`` (a seed that stopped early keeps its best)."""
        values = [c[min(epoch, len(c)) - 1] for c in self.best_so_far[: seed_index + 1] if c]
        return sum(values) / len(values)

    def should_stop(self, seed_index: int, patience: int | None) -> bool:
        """Whether the seed's metric has not improved for ``patience`` epochs."""
        curve = self.best_so_far[seed_index]
        if patience is None or len(curve) <= patience:
            return False
        return curve[-1] == curve[-1 - patience]
