from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

# A pruner subclasses Optuna's base class, so this module imports optuna when it loads (it is
# never loaded by ``import hptune``: ``hptune.search`` loads on first use).
import optuna
from optuna.pruners import BasePruner

from hptune import keys
from hptune._experimental import experimental
from hptune._trial_state import Curves, seed_curves
from hptune.seed_model import fit_seed_model
from hptune.seeds import best_so_far, t_quantile
from hptune.stored import is_running, state_of

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["PairedPruner", "epoch_pruner"]


@experimental("0.1.0")
class PairedPruner(BasePruner):
    """Stop a trial that is behind the earlier trials on the same seeds at the same epoch,
    beyond seed noise, with the error rate bounded over all of the trial's looks.

    At each report, for every position ``(seed index i, epoch e)`` the trial has reached,
    it is compared with each *reference*: an earlier trial (lower number), not a racing
    trial, with the same schedule shape (``shape_params``, e.g. ``scheduler``: a constant
    rate is behind a decaying one mid-run, whatever its end) and a learning-rate schedule
    at least as long (``schedule_param``, e.g. ``epochs``: a shorter schedule has decayed
    further at the same epoch, so it is never the yardstick of a longer one). The
    comparison is paired: the mean over the trial's seeds ``0..i`` of its best value up to
    epoch ``e`` minus the reference's on the same seeds at the same epoch.

    The noise is that of a paired difference: every earlier trial's values at epoch ``e``
    fitted as configuration + seed + noise (``hptune.seed_model``), so the part of a seed
    common to all configurations cancels, as it does in the comparison, and each trial's
    own level, whatever its schedule, is its configuration effect. The trial
    is pruned at a position when it is behind more than half the references by more than
    ``margin + t x sqrt(2 / (i + 1)) x noise``, at least ``n_startup_trials`` references
    being known there; ``t`` is Student's quantile at ``1 - alpha / looks`` (Bonferroni
    over the trial's looks: its seeds times its epochs from ``min_epoch``, counted from the
    references' seeds and the trial's schedule), so a trial equal to half its references or
    better is pruned with probability at most ``alpha`` over all its looks.

    A reference still running that has not reached the position is *waited for*: the
    position is judged at a later report, once it has. So with one worker the outcome
    never depends on timing, and with several it depends only on whether a trial ends
    before its references catch up (then it is kept, never wrongly pruned). A reference
    pruned before the position does not count there.

    Curves come from ``report_seed_epoch`` (hptune's objective calls it). With looks within
    an epoch (``training.eval_steps``), each look is a position too: the objective records
    ``looks_per_epoch`` on the trial, and only trials with as many looks per epoch are
    compared (the same position is then the same optimizer step).

    Args:
        n_startup_trials: References needed at a position before it can prune.
        min_epoch: The first position of a seed at which a trial may be pruned (an epoch,
            or with looks within epochs, a look).
        margin: How far behind, in the metric's units, beyond the noise bound, a trial must
            be (0: the noise bound alone).
        alpha: The chance, over all of a trial's looks, of pruning a trial no worse than
            half its references.
        schedule_param: The parameter that sets the schedule length, when trials differ in
            it (a reference's value must be at least the trial's); None when they do not.
        shape_params: Parameters that set the schedule's shape (a reference's must equal
            the trial's), e.g. ``("scheduler",)``.

    Raises:
        ValueError: A count under 1, a negative margin, or ``alpha`` outside (0, 1).

    Note:
        Experimental: the rule may still change (hptune.ExperimentalWarning when built from
        your code).
    """

    def __init__(
        self,
        *,
        n_startup_trials: int = 2,
        min_epoch: int = 2,
        margin: float = 0.0,
        alpha: float = 0.05,
        schedule_param: str | None = None,
        shape_params: tuple[str, ...] = (),
    ) -> None:
        if n_startup_trials < 1 or min_epoch < 1:
            raise ValueError(
                f"need n_startup_trials >= 1 and min_epoch >= 1, got {n_startup_trials=}, "
                f"{min_epoch=}"
            )
        if margin < 0:
            raise ValueError(f"the margin must not be negative, got {margin=}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha=}")
        self.n_startup_trials = n_startup_trials
        self.min_epoch = min_epoch
        self.margin = margin
        self.alpha = alpha
        self.schedule_param = schedule_param
        self.shape_params = tuple(shape_params)
        self._settled: dict[tuple[str, int], set[tuple[int, int]]] = {}

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        if keys.RACE_OF in trial.user_attrs:
            return False
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
        mine = _best_so_far(seed_curves(trial), sign)
        if not mine:
            return False
        earlier = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number < trial.number
            and keys.RACE_OF not in t.user_attrs
            and state_of(t) in ("complete", "pruned", "running")
        ]
        references = [t for t in earlier if self._comparable(t, trial)]
        n_seeds, n_epochs = self._design(trial, mine, references)
        looks = n_seeds * max(1, n_epochs - self.min_epoch + 1)
        positions = [
            (i, e)
            for i, (_, curve) in enumerate(mine)
            for e in range(self.min_epoch, len(curve) + 1)
        ]
        noise_at: dict[int, tuple[float, int] | None] = {}  # by epoch: one fit per report
        # A position judged with every reference known is not judged again (its values are
        # final), so a report costs the positions it adds, not all of them again.
        settled = self._settled.setdefault((study.study_name, trial.number), set())
        for index, epoch in positions:
            if (index, epoch) in settled:
                continue
            verdict = self._behind(mine, index, epoch, references, earlier, sign, looks, noise_at)
            if verdict:
                return True
            if verdict is not None:
                settled.add((index, epoch))
        return False

    def _comparable(self, reference: FrozenTrial, trial: FrozenTrial) -> bool:
        if _looks_per_epoch(reference) != _looks_per_epoch(trial):
            return False  # positions that are other points of the schedule
        if any(reference.params.get(p) != trial.params.get(p) for p in self.shape_params):
            return False
        if self.schedule_param is None:
            return True
        mine, theirs = (
            trial.params.get(self.schedule_param),
            reference.params.get(self.schedule_param),
        )
        return mine is None or (theirs is not None and theirs >= mine)

    def _design(
        self, trial: FrozenTrial, mine: Curves, references: list[FrozenTrial]
    ) -> tuple[int, int]:
        """The trial's seeds (as many as the references trained) and epochs (its schedule,
        else the longest curve seen)."""
        seeds = max([len(mine), *(len(seed_curves(r)) for r in references)])
        epochs = trial.params.get(self.schedule_param) if self.schedule_param else None
        if not isinstance(epochs, int):
            curves = [c for _, c in mine] + [c for r in references for _, c in seed_curves(r)]
            return seeds, max(len(c) for c in curves)
        return seeds, epochs * _looks_per_epoch(trial)

    def _behind(
        self,
        mine: Curves,
        index: int,
        epoch: int,
        references: list[FrozenTrial],
        earlier: list[FrozenTrial],
        sign: float,
        looks: int,
        noise_at: dict[int, tuple[float, int] | None],
    ) -> bool | None:
        """Whether the trial is behind at (seed index, epoch); None while a reference has
        not reached it (judged at a later report);
        the noise comes from every earlier trial (the seed model removes each one's own
        level, whatever its schedule)."""
        seeds = [s for s, _ in mine[: index + 1]]
        gaps = []
        for reference in references:
            known = _values_at(reference, seeds, epoch, sign)
            if known is _WAIT:
                return None  # judged at a later report, once this reference is there
            if known is None:
                continue
            assert isinstance(known, list)
            gaps.append(statistics.fmean(_at(mine, i, epoch) - known[i] for i in range(len(seeds))))
        if len(gaps) < self.n_startup_trials:
            return False
        # The trial itself is left out: the bound does not depend on its own values, so one
        # erratic seed of it cannot widen its own bound.
        if epoch not in noise_at:
            noise_at[epoch] = _paired_noise(
                {t.number: _known_seeds(t, epoch, sign) for t in earlier}
            )
        noise = noise_at[epoch]
        if noise is None:
            return False
        t = t_quantile(noise[1], 1 - self.alpha / looks)
        bound = self.margin + t * noise[0] * math.sqrt(2 / len(seeds))
        return self._verdict(gaps, bound)

    def _verdict(self, gaps: list[float], bound: float) -> bool:
        """Behind more than half the references (the median one, not the best: a trial equal
        to the best is not pruned for the best's luck at an early epoch)."""
        return sum(g > bound for g in gaps) > len(gaps) / 2


def _looks_per_epoch(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get(keys.LOOKS_PER_EPOCH, 1))


def _paired_noise(values: dict[int, dict[int, float]]) -> tuple[float, int] | None:
    """The seed model's noise of ``values`` (configuration + seed + noise) and its degrees of
    freedom; None without any (or with none left: exact shifts)."""
    values = {k: v for k, v in values.items() if v}
    if len(values) < 2:
        return None
    try:
        model = fit_seed_model(values)
    except ValueError:  # groups sharing no seed
        return None
    if not model.noise:
        return None
    return model.noise, model.degrees_of_freedom


def _known_seeds(reference: FrozenTrial, epoch: int, sign: float) -> dict[int, float]:
    """The reference's best-so-far value at ``epoch`` on every seed that has it for good
    (finished, or past ``epoch``)."""
    curves = _best_so_far(seed_curves(reference), sign)
    complete = state_of(reference) == "complete"
    together = bool(reference.user_attrs.get(keys.SEEDS_TOGETHER))  # every seed on its way
    return {
        seed: curve[min(epoch, len(curve)) - 1]
        for index, (seed, curve) in enumerate(curves)
        if len(curve) >= epoch or complete or (index < len(curves) - 1 and not together)
    }


_WAIT = object()


def _best_so_far(curves: Curves, sign: float) -> Curves:
    """Each curve as its best value so far, oriented so that lower is better."""
    return [
        (seed, [sign * b for b in best_so_far(values, minimize=sign > 0)])
        for seed, values in curves
    ]


def _at(curves: Curves, index: int, epoch: int) -> float:
    values = curves[index][1]
    return values[min(epoch, len(values)) - 1]  # a seed stopped early keeps its best


def _values_at(reference: FrozenTrial, seeds: list[int], epoch: int, sign: float) -> Any:
    """The reference's best-so-far values on ``seeds`` at ``epoch``; None when it never
    will have them (pruned before, other seeds); ``_WAIT`` while it is still on its way."""
    curves = dict(_best_so_far(seed_curves(reference), sign))
    order = [s for s, _ in seed_curves(reference)]
    running = is_running(reference)
    # Seeds trained together are all on their way until the trial ends; one after the other,
    # every seed but the last has ended.
    together = bool(reference.user_attrs.get(keys.SEEDS_TOGETHER))
    values = []
    for seed in seeds:
        if seed not in curves:
            # Not trained yet: a running reference will come to it, a finished one never will.
            return (
                _WAIT if running and all(s in order for s in seeds[: seeds.index(seed)]) else None
            )
        curve = curves[seed]
        last = together or order[-1] == seed
        if len(curve) < epoch and running and last:
            return _WAIT
        if len(curve) < epoch and state_of(reference) == "pruned" and last:
            return None  # pruned during this seed, before this epoch
        values.append(curve[min(epoch, len(curve)) - 1])
    return values


@experimental("0.1.0")
def epoch_pruner(
    *,
    n_startup_trials: int = 2,
    schedule_param: str | None = None,
    shape_params: tuple[str, ...] = (),
) -> PairedPruner:
    """The pruner of the epoch and regularization phases: a ``PairedPruner``.

    Args:
        n_startup_trials: References needed before a trial can be pruned.
        schedule_param: The parameter that sets the schedule length when trials differ in
            it (the epochs phase: ``epochs``).
        shape_params: Parameters that set the schedule's shape (the regularization
            phase: ``scheduler``).

    Returns:
        The pruner.

    Raises:
        ValueError: A count under 1.

    Note:
        Experimental: the rule it prunes by is being recalibrated (hptune.ExperimentalWarning
        when called from your code).
    """
    return PairedPruner(
        n_startup_trials=n_startup_trials, schedule_param=schedule_param, shape_params=shape_params
    )
