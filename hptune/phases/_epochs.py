from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hptune.config import EpochsPhaseConfig, check_rate_factors, register_phase
from hptune.diagnose import overfit_epochs
from hptune.keys import TrialStatus
from hptune.phases._base import PhaseBudget, TrialOutcome
from hptune.phases._cut import Cut
from hptune.phases._grid import GridPhase
from hptune.phases._local_rates import factor_words, rate_points, rates_won
from hptune.phases._ranked import Choice, Preference
from hptune.phases._ranking import NoiseRanking
from hptune.presets import epochs_range_for
from hptune.search import epoch_pruner

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.seeds import Margin
    from hptune.train import RunnerBase

__all__ = ["EpochsPhase", "default_epoch_range", "extended_epochs"]


def extended_epochs(high: int, extensions: int) -> list[int]:
    """The epoch counts an edge extension tries past ``high``: 1.5x, rounded up, each time.

    Args:
        high: The most epochs of the range.
        extensions: How many counts past it.

    Returns:
        Those counts, in order (e.g. 4, 2: ``[6, 9]``).
    """
    counts = []
    for _ in range(extensions):
        high = math.ceil(1.5 * high)
        counts.append(high)
    return counts


def default_epoch_range(n_train_examples: int) -> tuple[int, int]:
    """The presets' epoch range for the training-set size, widened to three values or more.

    Args:
        n_train_examples: Training examples.

    Returns:
        The fewest and the most epochs.

    Raises:
        ValueError: An empty training set.
    """
    low, high = epochs_range_for(n_train_examples)
    return low, max(high, low + 2)


@register_phase
class EpochsPhase(GridPhase):
    """Phase 4: how many epochs, each run with its own learning-rate schedule length.

    Every epoch count of the range is a trial. Inside a trial, early stopping keeps each
    seed's best epoch; across trials the paired pruner (``hptune.search.PairedPruner``) stops
    a trial behind the longer schedules trained before it, on the same seeds at the same
    epoch.

    Decision rule: the fewest epochs among those shown equivalent to the best (their paired
    difference is within the equivalence margin): the cheapest run that trains as well, and
    the least exposed to overfitting. A count merely not told apart from the best (after
    racing) does not win on cost: the best mean does.

    Edges are explored: when the best count is the most tried, one more count past it (1.5x,
    rounded up) is tried before the phase decides, up to ``extend_edges`` in all.

    With ``rate_factors`` beyond ``[1.0]``, each count is tried at the incoming rate times
    each factor (the rate re-tuned for each count: a longer decaying run wants a lower
    peak rate) and competes at its best rate; the paired pruner then compares only trials
    at the same rate. The default keeps one trial a count (see ``EpochsPhaseConfig``).

    Args:
        epoch_range: The fewest and the most epochs; every count between is a trial.
        pruning: Stop trials that fall behind with the paired pruner.
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.
        margin: The equivalence margin of the decision; None derives it from the seed noise.
        extend_edges: The most counts tried past the top of the range.
        rate: The incoming learning rate; None: every count at it.
        rate_factors: The factors of ``rate`` each count is tried at.

    Raises:
        ValueError: A range that is not ``1 <= fewest < most``, or a negative
            ``max_retries`` or ``extend_edges``.
    """

    name = "epochs"
    order = 4
    title = "4. Epochs"
    params = ("epochs",)
    options_model = EpochsPhaseConfig
    in_method = True
    cut_turn = 1
    uses_incoming = True

    def __init__(
        self,
        epoch_range: tuple[int, int],
        *,
        pruning: bool = True,
        extend_edges: int = 2,
        rate: float | None = None,
        rate_factors: Sequence[float] = (1.0,),
        max_retries: int = 2,
        notes: Sequence[str] = (),
        margin: Margin | None = None,
    ) -> None:
        super().__init__(
            max_retries=max_retries, notes=notes, margin=margin, extend_edges=extend_edges
        )
        low, high = epoch_range
        if not 1 <= low < high:
            raise ValueError(f"need 1 <= fewest < most epochs, got {epoch_range=}")
        self.values = list(range(low, high + 1))
        self.pruning = pruning
        self.rate = rate
        self.rate_factors = check_rate_factors(list(rate_factors))

    @classmethod
    def configured(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, incoming: Sequence[Diagnosis]
    ) -> dict[str, Any]:
        """The configured range (or the presets'); when the incoming configuration overfits,
        the range starts at the epoch where its validation was best.

        Args:
            config: The run's configuration (``phases.epochs``).
            base: The configuration the phase starts from.
            runner: The run's trainer (the training-set size, for the presets' range).
            incoming: How ``base`` trained in an earlier phase, seed by seed.

        Returns:
            The constructor's arguments.
        """
        options = config.phases.epochs
        low, high = options.range or default_epoch_range(runner.data.n_train)
        overfits = overfit_epochs(incoming)
        notes = []
        if overfits and min(overfits) < low:
            notes.append(
                f"the incoming configuration overfits (best validation at epoch "
                f"{min(overfits)}), so the range starts there instead of {low}"
            )
            low = min(overfits)
        return {
            "epoch_range": (low, max(high, low + 1)),
            "pruning": options.pruning,
            "extend_edges": options.extend_edges,
            "rate": base.learning_rate,
            "rate_factors": options.rate_factors,
            "notes": notes,
        }

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.epochs
        low, high = options.range or default_epoch_range(n_train)
        what = "each epoch count" + (", paired pruning" if options.pruning else "")
        beyond = extended_epochs(high, options.extend_edges)
        if beyond:
            what += ", up to " + ", ".join(map(str, beyond)) + " past the top"
        rates = len(options.rate_factors)
        if rates > 1:
            what += ", each at the learning rate " + ", ".join(
                f"x{f:g}" for f in sorted(options.rate_factors)
            )
        seed_epochs = sum(range(low, high + 1)) * rates + sum(beyond)
        most = max([high, *beyond])
        incoming = int(low <= base.epochs <= high)  # the count the phase before trained
        return PhaseBudget(
            (high - low + 1) * rates + len(beyond),
            (low, most),
            seed_epochs,
            what,
            {"epochs": most},
            incoming,
        )

    @classmethod
    def edge_cut(cls, config: TuneConfig) -> dict[str, Any]:
        return {"phases.epochs.extend_edges": 0} if config.phases.epochs.extend_edges else {}

    @classmethod
    def budget_cut(cls, config: TuneConfig, base: HParams, n_train: int) -> Cut | None:
        """The fewest count off the range, while it keeps two counts: the longest run stays,
        as under the best-epoch rule (the best checkpoint kept) it is the one a shorter count
        is read from under a constant rate, and the one a cut would lose the most by (the
        Playbook: fix a length, keep the best checkpoint, rather than tune the steps). None
        when the fewest count is the incoming one: it is read back, so the cut saves nothing."""
        low, high = config.phases.epochs.range or default_epoch_range(n_train)
        if high - 1 <= low or low == base.epochs:  # the incoming count is read back: no saving
            return None
        return Cut(
            {"phases.epochs.range": [low + 1, high]},
            f"phases.epochs.range [{low}, {high}] -> [{low + 1}, {high}]",
        )

    def create_pruner(self) -> optuna.pruners.BasePruner:
        if not self.pruning:
            return super().create_pruner()
        # a lower rate starts slower whatever its end: compare like with like
        return epoch_pruner(
            schedule_param="epochs", shape_params=("learning_rate",) if self._retunes else ()
        )

    def grid_points(self) -> list[dict[str, Any]]:
        # Longest first: a short run compared with a long one at the same epoch is ahead (its
        # rate has decayed further), so the long runs set the pruner's reference first.
        counts = [{"epochs": e} for e in sorted(self.values, reverse=True)]
        if not self._retunes:
            return counts
        assert self.rate is not None
        return rate_points(counts, self.rate, self.rate_factors, reference=False)

    @property
    def _retunes(self) -> bool:
        """Whether each count is tried at more than the incoming rate."""
        return self.rate is not None and len(self.rate_factors) > 1

    def max_epochs(self, base: HParams) -> int:
        return max([self.values[-1], *extended_epochs(self.values[-1], self.extend_edges)])

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        epochs = trial.suggest_int("epochs", self.values[0], self.max_epochs(base))
        if not self._retunes:
            return base.replace(epochs=epochs)
        rates = sorted({p["learning_rate"] for p in self.grid_points()})
        rate = trial.suggest_categorical("learning_rate", rates)
        return base.replace(epochs=epochs, learning_rate=rate)

    def edge_extension(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome]
    ) -> dict[str, Any] | None:
        tried = sorted({int(o.params["epochs"]) for o in outcomes if "epochs" in o.params})
        beyond = extended_epochs(self.values[-1], self.extend_edges)
        best = int(ranking.best.params["epochs"])
        if best != tried[-1]:
            return None
        following = [e for e in beyond if e > best and e not in tried]
        if not following:
            return None
        if self._retunes:  # at the rate the best count won at
            return {"epochs": following[0], "learning_rate": ranking.best.params["learning_rate"]}
        return {"epochs": following[0]}

    def _tabled(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        return sorted(
            (o for o in outcomes if "epochs" in o.params), key=lambda o: o.params["epochs"]
        )

    def _none_finished(self, base: HParams) -> str:
        return f"no epoch count finished; keeping {base.epochs} epochs"

    def _compared_trial(
        self, row: dict[str, Any], outcome: TrialOutcome, outcomes: list[TrialOutcome]
    ) -> int | None:
        # the first trial of the count (and rate)
        key = (outcome.params["epochs"], outcome.params.get("learning_rate"))
        return next(
            o.number
            for o in outcomes
            if (o.params.get("epochs"), o.params.get("learning_rate")) == key
        )

    def _choose(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome], base: HParams, direction: str
    ) -> Choice:
        order = {o.number: i for i, o in enumerate(ranking.ranked)}  # at its best rate
        chosen = min(ranking.equivalent, key=lambda o: (int(o.params["epochs"]), order[o.number]))
        case, reason = _FEWEST.choose(ranking, chosen, self._count)
        epochs = int(chosen.params["epochs"])
        params: dict[str, Any] = {"epochs": epochs}
        summary = {}
        if self._retunes:
            summary["rates_won"] = rates_won(ranking, _count, base)
            rate = chosen.params.get("learning_rate", base.learning_rate)
            if rate != base.learning_rate:
                params["learning_rate"] = rate
        reason += self._notes(ranking, outcomes, epochs)
        return Choice(params, chosen.mean, case, reason, summary)

    def _count(self, outcome: TrialOutcome) -> str:
        rate = outcome.params.get("learning_rate")
        if rate is None or self.rate is None:
            return _count(outcome)
        return f"{_count(outcome)} at {factor_words(rate, self.rate)}"

    def _notes(self, ranking: NoiseRanking, outcomes: list[TrialOutcome], epochs: int) -> str:
        """The counts tried past the range, a hint to widen it, and the trials pruned."""
        notes = ""
        extended = sorted(
            int(o.params["epochs"])
            for o in outcomes
            if int(o.params.get("epochs", 0)) > self.values[-1]
        )
        if extended:
            notes += "; tried past the range's top, as the best lay there: " + ", ".join(
                f"{e} epochs" for e in extended
            )
        top = max([self.values[-1], *extended])
        if epochs == top and not ranking.undecided and len(ranking.equivalent) == 1:
            notes += (
                f"; it is the most tried, so more epochs may do better still: widen "
                f"phases.epochs.range (e.g. [{self.values[0]}, {2 * top}])"
            )
        n_pruned = sum(1 for o in outcomes if o.status == TrialStatus.PRUNED)
        return notes + (f"; {n_pruned} trial(s) pruned" if n_pruned else "")


#: The rule: the fewest epochs among the counts equivalent to the best.
_FEWEST = Preference(
    "fewest_equivalent", "the fewer epochs, same performance, cheaper", "counts", "fewer count"
)


def _count(outcome: TrialOutcome) -> str:
    return f"{outcome.params['epochs']} epochs"
