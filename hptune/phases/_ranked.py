"""The decision of a phase that ranks its trials within seed noise: one template.

``RankedPhase.decide`` builds the table of the trials, ranks the finished ones as one family
(``rank_within_noise``), gives each row its verdict against the best, and lets the phase
choose (``_choose``: its rule, its words, its notes). A phase fills in the hooks: its table's
columns and order, which trials it decides on, the trial a row's verdict reads, and its
choice; the learning-rate, batch, epochs, regularization and LoRA-rank phases all decide so.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hptune.keys import TrialStatus
from hptune.phases._base import Phase
from hptune.phases._outcome import Decision, TrialOutcome
from hptune.phases._ranking import NoiseRanking, rank_within_noise

if TYPE_CHECKING:
    from hptune.hparams import HParams
    from hptune.seed_model import ModelComparison

__all__ = ["Choice", "Preference", "RankedPhase", "preference_case"]


@dataclass(frozen=True)
class Choice:
    """What a phase's rule chose from its ranking, in the words of its decision.

    Args:
        params: The hyperparameters it fixes; empty to fix none.
        value: The chosen trial's seed mean.
        case: The branch of the rule that applied.
        reason: The decision in a sentence, with its evidence and notes.
        summary: More evidence, after the ranking's figures in the decision's summary.
    """

    params: dict[str, Any]
    value: float | None
    case: str
    reason: str
    summary: dict[str, Any] = field(default_factory=dict)


def preference_case(ranking: NoiseRanking, chosen: TrialOutcome, preferred: str) -> str:
    """The branch of the rule "the preferred trial among those equivalent to the best"
    (the fewest epochs, the smallest rank, the fastest batch).

    Args:
        ranking: The phase's ranking.
        chosen: The preferred trial among ``ranking.equivalent``.
        preferred: The case's name when the preferred trial is not the best.

    Returns:
        ``single_seed`` (no noise estimate), ``preferred``, ``best_mean_undecided`` (the
        best wins as others are not told apart from it) or ``best``.
    """
    if ranking.n_seeds < 2:
        return "single_seed"
    if chosen is not ranking.best:
        return preferred
    return "best_mean_undecided" if ranking.undecided else "best"


@dataclass(frozen=True)
class Preference:
    """A rule "the preferred trial among those equivalent to the best", in words.

    Args:
        case: The case's name when the preferred trial is not the best.
        gain: What the preferred trial gives, e.g. ``the fewer epochs, same performance,
            cheaper``.
        others: The trials, e.g. ``counts``.
        fewer: A preferred trial, e.g. ``fewer count``.
    """

    case: str
    gain: str
    others: str
    fewer: str

    def choose(
        self, ranking: NoiseRanking, chosen: TrialOutcome, label: Callable[[TrialOutcome], str]
    ) -> tuple[str, str]:
        """The branch of the rule (``preference_case``) and its reason.

        Args:
            ranking: The phase's ranking.
            chosen: The preferred trial among ``ranking.equivalent``.
            label: A trial's name in the reason and its evidence.

        Returns:
            The case and the reason, with its evidence.
        """
        case = preference_case(ranking, chosen, self.case)
        evidence = ranking.evidence(label)
        if case == "single_seed":
            reason = f"{label(chosen)} has the best value; with one seed there is no noise estimate"
        elif case == self.case:
            reason = (
                f"{label(ranking.best)} has the best mean and {label(chosen)} is equivalent to "
                f"it: chose {self.gain} ({evidence})"
            )
        elif case == "best_mean_undecided":
            reason = (
                f"{label(chosen)} has the best mean; the {self.others} not told apart from it "
                f"with {ranking.n_seeds} seeds are not shown equivalent, so the best mean wins "
                f"({evidence})"
            )
        else:
            reason = f"{label(chosen)} is best and no {self.fewer} is equivalent ({evidence})"
        return case, reason


class RankedPhase(Phase):
    """A phase that decides by ranking its finished trials within seed noise.

    Its decision's summary holds the table of every trial (its parameter columns, status,
    seed mean, seed values and ``trial_columns``; a verdict against the best where the phase
    shows one), the phase's own entries (``_summary_head``), the ranking's figures
    (``NoiseRanking.figures``) and what its choice adds.
    """

    #: ``TrialOutcome`` attributes shown in the table after the seed values.
    trial_columns: ClassVar[tuple[str, ...]] = ()

    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        rows = [(o, self._row(o, base)) for o in self._tabled(outcomes)]
        table = [row for _, row in rows]
        finished = self._finished(outcomes)
        if not finished:
            summary = {"table": table, **self._summary_head(None)}
            reason = self._none_finished(base)
            return Decision(self.name, {}, None, "no_valid_trial", reason, summary)
        ranking = rank_within_noise(finished, direction, self.margin)
        for outcome, row in rows:
            number = self._compared_trial(row, outcome, outcomes)
            if number is not None:
                row.update(self._verdict_columns(ranking.comparisons.get(number)))
        choice = self._choose(ranking, outcomes, base, direction)
        summary = {
            "table": table,
            **self._summary_head(ranking),
            **ranking.figures(),
            **choice.summary,
        }
        return Decision(self.name, choice.params, choice.value, choice.case, choice.reason, summary)

    def _row(self, outcome: TrialOutcome, base: HParams) -> dict[str, Any]:
        """A trial's row of the table (before its verdict)."""
        return {
            **self._columns(outcome, base),
            "status": str(outcome.status),
            "mean": outcome.mean,
            "seed_values": {str(s): v for s, v in outcome.seed_values.items()},
            **{name: getattr(outcome, name) for name in self.trial_columns},
        }

    def _tabled(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        """The trials the table shows, in its order (default: all, as they came)."""
        return outcomes

    def _columns(self, outcome: TrialOutcome, base: HParams) -> dict[str, Any]:
        """A row's parameter columns (default: each of ``params``, None where missing)."""
        return {name: outcome.params.get(name) for name in self.params}

    def _finished(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        """The trials the phase decides on: those that finished (``_decidable`` ones)."""
        return [o for o in outcomes if o.status == TrialStatus.OK and self._decidable(o)]

    def _decidable(self, outcome: TrialOutcome) -> bool:
        """Whether a finished trial is one the phase decides on (default: every one)."""
        return True

    def _none_finished(self, base: HParams) -> str:
        """The reason of the decision when no trial finished (it fixes nothing)."""
        return "no trial finished; keeping the incoming configuration"

    def _summary_head(self, ranking: NoiseRanking | None) -> dict[str, Any]:
        """Entries of the summary after the table (``ranking``: None when no trial finished)."""
        return {}

    def _compared_trial(
        self, row: dict[str, Any], outcome: TrialOutcome, outcomes: list[TrialOutcome]
    ) -> int | None:
        """The trial whose comparison with the best a row shows; None: no verdict column."""
        return None

    def _verdict_columns(self, comparison: ModelComparison | None) -> dict[str, Any]:
        """A row's verdict against the best (None for the best itself and unranked trials)."""
        return {"verdict": None if comparison is None else str(comparison.verdict)}

    @abc.abstractmethod
    def _choose(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome], base: HParams, direction: str
    ) -> Choice:
        """The phase's rule: what it fixes, and why, from the ranking of its finished trials.

        Args:
            ranking: The finished trials, ranked within seed noise.
            outcomes: Every trial the phase decides on (failed, diverged, pruned too).
            base: The configuration the phase started from.
            direction: ``minimize`` or ``maximize``.

        Returns:
            The choice, with its case and reason.
        """
