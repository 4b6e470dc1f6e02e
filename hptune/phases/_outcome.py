"""What a phase reads and writes: a finished trial, its decision, and its planned budget."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hptune.keys import TrialStatus

if TYPE_CHECKING:
    from hptune.hparams import HParams

__all__ = ["Decision", "PhaseBudget", "TrialOutcome"]


@dataclass(frozen=True)
class TrialOutcome:
    """A finished trial as phases see it: its parameters and its value on every seed.

    Args:
        number: The trial's number in its study.
        params: Its parameters, as the phase suggested them.
        seed_values: Its best validation value on each seed; empty when it diverged or failed.
        status: How it ended.
        examples_per_second: Training throughput per GPU, averaged over the seeds.
        tokens_per_second: The same in tokens.
        test_values: Each seed's test-split value (the final evaluation only).
        diagnoses: Each seed's curve diagnosis (see ``hptune.diagnose``).
    """

    number: int
    params: dict[str, Any]
    seed_values: dict[int, float]  # empty when the trial diverged or failed
    status: TrialStatus
    examples_per_second: float | None = None
    tokens_per_second: float | None = None
    test_values: dict[int, float] = field(default_factory=dict)  # final evaluation only
    diagnoses: tuple[str, ...] = ()  # each seed's curve diagnosis (hptune.diagnose)

    @property
    def diagnosis(self) -> str | None:
        """The most common diagnosis over the seeds, or None without curves."""
        if not self.diagnoses:
            return None
        return max(set(self.diagnoses), key=self.diagnoses.count)

    @property
    def mean(self) -> float | None:
        """The mean of the seed values, or None without any."""
        if not self.seed_values:
            return None
        return sum(self.seed_values.values()) / len(self.seed_values)


@dataclass(frozen=True)
class Decision:
    """What a phase fixes for the phases after it, with its evidence and the rule applied.

    ``case`` names the branch of the decision rule (for example ``clear_winner`` or
    ``tie_within_noise``) so that a reader knows how much the evidence supports it.

    Args:
        phase: The phase's name.
        params: The hyperparameters it fixes (``HParams`` field names); empty to fix none.
        value: The chosen configuration's seed mean, or None when no trial finished.
        case: The branch of the decision rule that applied.
        reason: The decision in a sentence, with its evidence.
        summary: The evidence as data (tables, proposals, the test result...).
    """

    phase: str
    params: dict[str, Any]
    value: float | None
    case: str
    reason: str
    summary: dict[str, Any] = field(default_factory=dict)

    def apply(self, hp: HParams) -> HParams:
        """``hp`` with the decided parameters.

        Args:
            hp: The configuration the phase started from.

        Returns:
            A copy of ``hp`` with ``params`` applied.

        Raises:
            TypeError: A parameter that is not a field of ``HParams``.
            ValueError: A decided value out of range.
        """
        return hp.replace(**self.params)

    def to_json(self) -> str:
        """The decision as JSON, as stored on the phase's study.

        Returns:
            A JSON object with every field.
        """
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Decision:
        """The decision that ``to_json`` wrote.

        Args:
            text: A JSON object with every field.

        Returns:
            The decision.

        Raises:
            ValueError: Text that is not JSON.
            TypeError: A field missing or unknown.
        """
        return cls(**json.loads(text))


@dataclass(frozen=True)
class PhaseBudget:
    """What a phase will cost at most, for ``hptune plan``: trials and epochs per seed.

    Args:
        trials: Trials it runs at most.
        epochs: The fewest and the most epochs a trial trains.
        seed_epochs: Epochs of all its trials, for one seed.
        what: The phase in a few words.
        bounds: Upper bounds of what it may decide (e.g. ``{"epochs": 5}``), for the phases
            after it.
        read_back: Of ``trials``, those at the incoming configuration itself: the phase
            before trained it on the same seeds, so it is read back, not trained again.
    """

    trials: int
    epochs: tuple[int, int]  # fewest and most epochs a trial trains
    seed_epochs: int  # epochs of all its trials, for one seed
    what: str  # the phase in a few words
    bounds: dict[str, Any] = field(default_factory=dict)  # upper bounds it may decide
    read_back: int = 0  # trials at the incoming configuration, trained by the phase before

    @classmethod
    def full(cls, trials: int, epochs: int, what: str) -> PhaseBudget:
        """The budget of ``trials`` trials that each train ``epochs`` epochs.

        Args:
            trials: Trials it runs at most.
            epochs: Epochs of every trial.
            what: The phase in a few words.

        Returns:
            The budget.
        """
        return cls(trials, (epochs, epochs), trials * epochs, what)
