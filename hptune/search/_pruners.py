from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from optuna.pruners import BasePruner

from hptune import keys
from hptune._experimental import experimental
from hptune.stored import is_running, state_of

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["PairedPruner", "epoch_pruner", "report_seed_epoch", "seed_curves"]

#: A trial's curves: ``[[seed, [value of epoch 1, epoch 2, ...]], ...]`` in training order.
Curves = list[tuple[int, list[float]]]


def report_seed_epoch(trial: optuna.Trial, seed: int, value: float) -> None:
    """Record one epoch's validation value of ``seed`` for ``PairedPruner``.

    Call it after every epoch of every seed, seeds one after the other, then
    ``trial.report(...)`` and ``trial.should_prune()`` as usual.

    Args:
        trial: The running trial.
        seed: The seed being trained.
        value: Its validation value after this epoch.

    Raises:
        ValueError: A value that is not finite.
    """
    if not math.isfinite(value):
        raise ValueError(f"the value must be finite, got {value=}")
    curves: list[tuple[int, list[float]]] = [
        (int(s), [float(x) for x in v]) for s, v in trial.user_attrs.get(keys.SEED_CURVES, [])
    ]
    if curves and curves[-1][0] == seed:
        curves[-1][1].append(float(value))
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


@experimental("0.1.0")
class PairedPruner(BasePruner):
    """Stop a trial that is behind the earlier trials on the same seeds at the same epoch.

    At each report, for every position ``(seed index i, epoch e)`` the trial has reached,
    it is compared with each *reference*: an earlier trial (lower number), not a racing
    trial, whose learning-rate schedule is at least as long (``schedule_param``, e.g.
    ``epochs``: a shorter schedule has decayed further at the same epoch, so it is never the
    yardstick of a longer one). The
    comparison is paired: the mean over the trial's seeds ``0..i`` of its best value up
    to epoch ``e`` minus the reference's on the same seeds at the same epoch. The trial is
    pruned when this difference is worse than ``margin`` for more than half the
    references, and at least ``n_startup_trials`` references are known there.

    A reference still running that has not reached the position is *waited for*: the
    position is judged at a later report, once it has. So with one worker the outcome
    never depends on timing, and with several it depends only on whether a trial ends
    before its references catch up (then it is kept, never wrongly pruned). A reference
    pruned before the position does not count there.

    The margin, unless given, is ``noise_factor x sigma_e / sqrt(i + 1)``: ``sigma_e`` is
    the median, over references with two seeds or more at epoch ``e``, of their seed
    standard deviation there; without one, nothing is pruned at that position.

    Curves come from ``report_seed_epoch`` (hptune's objective calls it).

    Args:
        n_startup_trials: References needed at a position before it can prune.
        min_epoch: The first epoch of a seed at which a trial may be pruned.
        margin: A fixed noise margin in the metric's units; None derives it.
        noise_factor: The derived margin in seed standard deviations of the mean.
        schedule_param: The parameter that sets the schedule length, when trials differ in
            it (a reference's value must be at least the trial's); None when they do not.

    Raises:
        ValueError: A negative count or margin, or ``min_epoch`` under 1.

    Note:
        Experimental: the rule it prunes by is being recalibrated (hptune.ExperimentalWarning
        when built from your code).
    """

    def __init__(
        self,
        *,
        n_startup_trials: int = 2,
        min_epoch: int = 2,
        margin: float | None = None,
        noise_factor: float = 1.0,
        schedule_param: str | None = None,
    ) -> None:
        if n_startup_trials < 1 or min_epoch < 1:
            raise ValueError(f"need n_startup_trials >= 1 and min_epoch >= 1, got "
                             f"{n_startup_trials=}, {min_epoch=}")  # fmt: skip
        if (margin is not None and margin < 0) or noise_factor < 0:
            raise ValueError(f"margins must not be negative, got {margin=}, {noise_factor=}")
        self.n_startup_trials = n_startup_trials
        self.min_epoch = min_epoch
        self.margin = margin
        self.noise_factor = noise_factor
        self.schedule_param = schedule_param

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        from optuna.study import StudyDirection

        if keys.RACE_OF in trial.user_attrs:
            return False
        sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
        mine = _best_so_far(seed_curves(trial), sign)
        if not mine:
            return False
        references = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number < trial.number
            and keys.RACE_OF not in t.user_attrs
            and self._at_least_as_long(t, trial)
            and state_of(t) in ("complete", "pruned", "running")
        ]
        for index, (_, curve) in enumerate(mine):
            for epoch in range(self.min_epoch, len(curve) + 1):
                if self._behind(mine, index, epoch, references, sign):
                    return True
        return False

    def _at_least_as_long(self, reference: FrozenTrial, trial: FrozenTrial) -> bool:
        if self.schedule_param is None:
            return True
        mine, theirs = (
            trial.params.get(self.schedule_param),
            reference.params.get(self.schedule_param),
        )
        return mine is None or (theirs is not None and theirs >= mine)

    def _behind(
        self,
        mine: Curves,
        index: int,
        epoch: int,
        references: list[FrozenTrial],
        sign: float,
    ) -> bool:
        """Whether the trial is behind at (seed index, epoch), once every reference is known."""
        seeds = [s for s, _ in mine[: index + 1]]
        gaps, spreads = [], []
        for reference in references:
            known = _values_at(reference, seeds, epoch, sign)
            if known is _WAIT:
                return False  # judged at a later report, once this reference is there
            if known is None:
                continue
            assert isinstance(known, list)
            gaps.append(statistics.fmean(_at(mine, i, epoch) - known[i] for i in range(len(seeds))))
            spread = _seed_spread(reference, epoch, sign)
            if spread is not None:
                spreads.append(spread)
        if len(gaps) < self.n_startup_trials:
            return False
        margin = self.margin
        if margin is None:
            if not spreads:
                return False
            margin = self.noise_factor * statistics.median(spreads) / math.sqrt(len(seeds))
        return sum(g > margin for g in gaps) > len(gaps) / 2


_WAIT = object()


def _best_so_far(curves: Curves, sign: float) -> Curves:
    """Each curve as its best value so far, oriented so that lower is better."""
    result = []
    for seed, values in curves:
        best: list[float] = []
        for v in values:
            best.append(min(sign * v, best[-1]) if best else sign * v)
        result.append((seed, best))
    return result


def _at(curves: Curves, index: int, epoch: int) -> float:
    values = curves[index][1]
    return values[min(epoch, len(values)) - 1]  # a seed stopped early keeps its best


def _values_at(reference: FrozenTrial, seeds: list[int], epoch: int, sign: float) -> Any:
    """The reference's best-so-far values on ``seeds`` at ``epoch``; None when it never
    will have them (pruned before, other seeds); ``_WAIT`` while it is still on its way."""
    curves = dict(_best_so_far(seed_curves(reference), sign))
    order = [s for s, _ in seed_curves(reference)]
    running = is_running(reference)
    values = []
    for seed in seeds:
        if seed not in curves:
            # Not trained yet: a running reference will come to it, a finished one never will.
            return (
                _WAIT if running and all(s in order for s in seeds[: seeds.index(seed)]) else None
            )
        curve = curves[seed]
        finished_seed = not running or order[-1] != seed
        if len(curve) < epoch and not finished_seed:
            return _WAIT
        if len(curve) < epoch and state_of(reference) == "pruned" and order[-1] == seed:
            return None  # pruned during this seed, before this epoch
        values.append(curve[min(epoch, len(curve)) - 1])
    return values


def _seed_spread(reference: FrozenTrial, epoch: int, sign: float) -> float | None:
    """The standard deviation over the reference's seeds of their best value at ``epoch``
    (seeds it has finished, or is past ``epoch`` in); None with fewer than two."""
    curves = _best_so_far(seed_curves(reference), sign)
    complete = state_of(reference) == "complete"
    values = [
        curve[min(epoch, len(curve)) - 1]
        for index, (_, curve) in enumerate(curves)
        if len(curve) >= epoch or complete or index < len(curves) - 1
    ]
    return statistics.stdev(values) if len(values) > 1 else None


@experimental("0.1.0")
def epoch_pruner(*, n_startup_trials: int = 2, schedule_param: str | None = None) -> PairedPruner:
    """The pruner of the epoch and regularization phases: a ``PairedPruner``.

    Args:
        n_startup_trials: References needed before a trial can be pruned.
        schedule_param: The parameter that sets the schedule length when trials differ in
            it (the epochs phase: ``epochs``).

    Returns:
        The pruner.

    Raises:
        ValueError: A count under 1.

    Note:
        Experimental: the rule it prunes by is being recalibrated (hptune.ExperimentalWarning
        when called from your code).
    """
    return PairedPruner(n_startup_trials=n_startup_trials, schedule_param=schedule_param)
