"""What every phase is: a search space with its sampler, a budget, and a way to decide."""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hptune import keys
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.phases._accounting import n_settled, to_retry
from hptune.seeds import Margin, resolve_margin

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.train import RunnerBase

__all__ = [
    "DECISION_ATTR",
    "Decision",
    "Phase",
    "PhaseBudget",
    "TrialOutcome",
]

#: The study user attribute that holds a phase's decision (JSON); its presence means "done".
DECISION_ATTR = keys.DECISION


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
    """

    trials: int
    epochs: tuple[int, int]  # fewest and most epochs a trial trains
    seed_epochs: int  # epochs of all its trials, for one seed
    what: str  # the phase in a few words
    bounds: dict[str, Any] = field(default_factory=dict)  # upper bounds it may decide


class Phase(abc.ABC):
    """One step of the method: which configurations to try, and how to decide among them.

    A phase never trains anything itself: the pipeline asks it for a sampler and a budget,
    runs its trials through the shared objective, then hands it the finished trials. Its
    constructor sets everything it needs; ``from_config`` builds it from a run's
    configuration. Phases are registered by name in ``hptune.phases.PHASES``.

    Args:
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was (e.g. a range moved by a diagnosis); added
            to the decision's reason.
        margin: The equivalence margin of its decision (``objective.equivalence_margin``);
            None derives it from the seed noise.

    Raises:
        ValueError: A negative ``max_retries`` or ``margin``.
    """

    name: ClassVar[str]
    #: Whether trials also measure the test split (only the final evaluation does).
    evaluate_test: ClassVar[bool] = False
    #: Whether the phase is set up from how the incoming configuration trained.
    uses_incoming: ClassVar[bool] = False
    #: Whether a diverged trial is run again with the guide's remedy (when configured).
    remedies_divergence: ClassVar[bool] = True
    #: Defaults for a subclass whose own ``__init__`` does not call this one's.
    max_retries: int = 2
    notes: tuple[str, ...] = ()
    margin: Margin | None = None
    #: The most trials the phase adds past an edge of its values (``edge_extension``).
    extend_edges: int = 0

    def __init__(
        self, *, max_retries: int = 2, notes: Sequence[str] = (), margin: Margin | None = None
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries=}")
        resolve_margin(margin, 1.0)  # a negative number, or a string that is no percentage
        self.max_retries = max_retries
        self.notes = tuple(notes)
        self.margin = margin

    @classmethod
    def from_config(
        cls,
        config: TuneConfig,
        *,
        base: HParams,
        runner: RunnerBase,
        incoming: Sequence[Diagnosis] = (),
    ) -> Phase:
        """The phase as ``config`` sets it up, starting from the configuration ``base``.

        Args:
            config: The run's configuration (its ``phases`` section).
            base: The configuration the earlier phases decided.
            runner: The run's trainer (its data sizes; the batch phase probes memory).
            incoming: How ``base`` trained in an earlier phase, seed by seed.

        Returns:
            The phase, ready to run.

        Raises:
            ConfigError: The phase's options do not fit ``base``.
        """
        return cls(**cls.shared_options(config))

    @staticmethod
    def shared_options(config: TuneConfig) -> dict[str, Any]:
        """The constructor's options every phase takes from the configuration: its retries
        and its equivalence margin (a subclass's ``from_config`` passes them on).

        Args:
            config: The run's configuration.

        Returns:
            ``max_retries`` and ``margin``, as keyword arguments.
        """
        return {"max_retries": config.max_retries, "margin": config.objective.equivalence_margin}

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        """The phase's budget as ``hptune plan`` shows it, without building the phase.

        Args:
            config: The run's configuration.
            base: The configuration the phase would start from (upper bounds).
            n_train: Training examples.

        Returns:
            Its trials and epochs, at most.
        """
        return PhaseBudget(1, (base.epochs, base.epochs), base.epochs, cls.__doc__ or cls.name)

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        """The sampler of this phase's study (default: Optuna's default).

        Returns:
            A new sampler (by default a TPE sampler seeded with 0).
        """
        import optuna

        return optuna.samplers.TPESampler(seed=0)

    def create_pruner(self) -> optuna.pruners.BasePruner:
        """The pruner of this phase's study (default: none; every trial runs to its end).

        Returns:
            A new pruner (by default Optuna's ``NopPruner``).
        """
        import optuna

        return optuna.pruners.NopPruner()

    def max_epochs(self, base: HParams) -> int:
        """The most epochs a trial of this phase trains (the stride of its report steps).

        Args:
            base: The configuration the phase starts from.

        Returns:
            An epoch count (by default ``base.epochs``).
        """
        return base.epochs

    def initial_params(self, base: HParams) -> list[dict[str, Any]]:
        """Parameters to queue when the study starts (e.g. the incoming configuration).

        Args:
            base: The configuration the phase starts from.

        Returns:
            One parameter dict per trial to queue (by default none).
        """
        return []

    @abc.abstractmethod
    def n_trials(self) -> int:
        """How many trials the phase runs in all.

        Returns:
            The budget, in trials.
        """

    def n_remaining(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        """How many trials are still to run or running, given the study's trials so far.

        Complete and pruned trials are done; a failed one is done once its retries are used
        up or when it ran out of memory; any other failed or interrupted trial is run again.

        Args:
            trials: The study's trials.

        Returns:
            A count, never negative.
        """
        return max(self.n_trials() - n_settled(trials, self.max_retries), 0)

    def to_retry(self, trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
        """Failed trials to queue again with the same parameters (at most ``max_retries``).

        Args:
            trials: The study's trials.

        Returns:
            One failed trial per parameter set to retry; none out of memory.
        """
        return to_retry(trials, self.max_retries)

    def edge_extension(self, ranking: Any, outcomes: list[TrialOutcome]) -> dict[str, Any] | None:
        """One more trial past the edge of the values tried, when the best lies there
        (called once every trial is done, at most ``extend_edges`` times; default: never).

        Args:
            ranking: The phase's ranking of its finished trials (a
                ``hptune.phases.NoiseRanking``; typed loosely here, as the ranking module
                builds on this one).
            outcomes: Every finished trial (failed, diverged and pruned ones too): the
                values tried.

        Returns:
            The new trial's parameters, or None.
        """
        return None

    @abc.abstractmethod
    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        """The configuration of ``trial``: ``base`` with this phase's suggestions applied.

        Args:
            trial: The trial to suggest parameters on.
            base: The configuration the phase starts from.

        Returns:
            The configuration the trial trains.
        """

    @abc.abstractmethod
    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        """Choose from the finished trials.

        Args:
            outcomes: The trials the phase decides on (any may have failed or diverged;
                empty when none finished).
            base: The configuration the phase started from.
            direction: ``minimize`` or ``maximize``.

        Returns:
            The decision; it fixes nothing when no trial finished.
        """
