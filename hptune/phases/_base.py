"""What every phase is: a search space with its sampler, a budget, and a way to decide."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Self

from hptune._lazy import optuna
from hptune.exceptions import ConfigError
from hptune.phases._accounting import n_settled, to_retry
from hptune.phases._outcome import Decision, PhaseBudget, TrialOutcome
from hptune.phases._ranking import NoiseRanking
from hptune.seeds import Margin, resolve_margin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hptune.config import PhaseOptions, TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.phases._cut import Cut
    from hptune.train import RunnerBase
    from hptune.train.target import Target

__all__ = [
    "Decision",
    "Phase",
    "PhaseBudget",
    "SingleRunPhase",
    "TrialOutcome",
]


class Phase(abc.ABC):
    """One step of the method: which configurations to try, and how to decide among them.

    A phase never trains anything itself: the pipeline asks it for a sampler and a budget,
    runs its trials through the shared objective, then hands it the finished trials. Its
    constructor sets everything it needs; ``from_config`` builds it from a run's
    configuration. A phase class declares what the rest of the package reads of it (its
    name, title, parameters, section under ``phases:``, budget cuts and plan detail) and
    registers with ``@hptune.phases.register_phase``; ``hptune.phases.PHASES`` lists them.

    Args:
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was (e.g. a range moved by a diagnosis); added
            to the decision's reason.
        margin: The equivalence margin of its decision (``objective.equivalence_margin``);
            None derives it from the seed noise.
        extend_edges: The most trials it adds past an edge of its values (a phase that
            extends its edges passes it on).

    Raises:
        ValueError: A negative ``max_retries``, ``margin`` or ``extend_edges``.
    """

    #: Its name: its study is ``<run>.<name>``; ``phases.run`` names it.
    name: ClassVar[str]
    #: Where it runs: the phases run (and ``phases.run`` is put) in this order.
    order: ClassVar[float]
    #: Its heading in the report.
    title: ClassVar[str] = ""
    #: The ``HParams`` fields it varies; the report plots the first against the metric.
    params: ClassVar[tuple[str, ...]] = ()
    #: Its section under ``phases:`` (a ``hptune.config.PhaseOptions`` model); None: none.
    options_model: ClassVar[type[PhaseOptions] | None] = None
    #: One of the method's phases: it runs unless ``phases.run`` says otherwise.
    in_method: ClassVar[bool] = False
    #: Whether ``phases.run`` may name it (not the final test evaluation, which follows).
    listed: ClassVar[bool] = True
    #: Its turn among the budget's notch cuts (``budget_cut``; lower first); None: none.
    cut_turn: ClassVar[int | None] = None
    #: Whether a budget fit cuts it to its floor before it cuts a seed (the phase whose
    #: extra trials weigh least against the seeds every decision rests on).
    cut_before_seeds: ClassVar[bool] = False
    #: The key of its plan detail in ``hptune plan --json`` (``plan_detail``); None: none.
    plan_key: ClassVar[str | None] = None
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
        self,
        *,
        max_retries: int = 2,
        notes: Sequence[str] = (),
        margin: Margin | None = None,
        extend_edges: int = 0,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries=}")
        resolve_margin(margin, 1.0)  # a negative number, or a string that is no percentage
        if extend_edges < 0:
            raise ValueError(f"extend_edges must be 0 or more, got {extend_edges=}")
        self.max_retries = max_retries
        self.notes = tuple(notes)
        self.margin = margin
        self.extend_edges = extend_edges

    @classmethod
    def from_config(
        cls,
        config: TuneConfig,
        *,
        base: HParams,
        runner: RunnerBase,
        incoming: Sequence[Diagnosis] = (),
    ) -> Self:
        """The phase as ``config`` sets it up, starting from the configuration ``base``: its
        own options (``configured``) and the shared ones (``shared_options``).

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
        options = cls.configured(config, base, runner, incoming)
        try:
            return cls(**options, **cls.shared_options(config))
        except ValueError as exc:
            raise ConfigError(f"phases.{cls.name}: {exc}") from None

    @classmethod
    def configured(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, incoming: Sequence[Diagnosis]
    ) -> dict[str, Any]:
        """The constructor's own arguments as ``config`` sets them (``from_config`` adds the
        shared ones; default: none).

        Args:
            config: The run's configuration (the phase's section).
            base: The configuration the phase starts from.
            runner: The run's trainer.
            incoming: How ``base`` trained in an earlier phase, seed by seed.

        Returns:
            Keyword arguments of the phase's constructor.
        """
        return {}

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
        return PhaseBudget.full(1, base.epochs, cls.__doc__ or cls.name)

    @classmethod
    def edge_cut(cls, config: TuneConfig) -> dict[str, Any]:
        """What a budget fit sets to turn this phase's edge extensions off (made with every
        phase's, after racing; default: nothing).

        Args:
            config: The run's configuration (the phase runs).

        Returns:
            Dotted fields and their new values; empty when there is nothing to turn off.
        """
        return {}

    @classmethod
    def budget_cut(cls, config: TuneConfig, base: HParams, n_train: int) -> Cut | None:
        """One notch off this phase's size, for a budget fit (in its ``cut_turn``).

        Args:
            config: The run's configuration, with the cuts so far (the phase runs).
            base: The starting configuration.
            n_train: Training examples.

        Returns:
            The cut, or None when the phase is at its smallest (default: always).
        """
        return None

    @classmethod
    def plan_detail(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, target: Target
    ) -> list[dict[str, Any]]:
        """What ``hptune plan`` shows of this phase beyond its budget (under ``plan_key``).

        Args:
            config: The run's (fitted) configuration.
            base: The starting configuration.
            runner: The run's trainer.
            target: The machine planned for.

        Returns:
            One row per value the phase would try (default: none).
        """
        return []

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        """The sampler of this phase's study (default: Optuna's default).

        Returns:
            A new sampler (by default a TPE sampler seeded with 0).
        """
        return optuna.samplers.TPESampler(seed=0)

    def create_pruner(self) -> optuna.pruners.BasePruner:
        """The pruner of this phase's study (default: none; every trial runs to its end).

        Returns:
            A new pruner (by default Optuna's ``NopPruner``).
        """
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

    def edge_extension(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome]
    ) -> dict[str, Any] | None:
        """One more trial past the edge of the values tried, when the best lies there
        (called once every trial is done, at most ``extend_edges`` times; default: never).

        Args:
            ranking: The phase's ranking of its finished trials.
            outcomes: Every finished trial (failed, diverged and pruned ones too): the
                values tried.

        Returns:
            The new trial's parameters, or None.
        """
        return None

    def rate_probes(self, outcomes: list[TrialOutcome]) -> list[dict[str, Any]]:
        """The learning rates the phase's decision still needs, once its own trials are
        done: a configuration that changes what the rate was tuned under, at the other rates
        of the local set (`hptune.phases._local_rates`; default: none). The queue adds those
        not tried yet, before racing; under a compute budget, those its room pays for
        (``hptune.pipeline._probes``).

        Args:
            outcomes: Every finished trial.

        Returns:
            Each probe's parameters (the keys ``suggest`` reads).
        """
        return []

    def spare_points(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome]
    ) -> list[dict[str, Any]]:
        """Configurations a compute budget's spare room may add once the phase's own trials
        and racing are done, in the order they are worth it (default: none). The queue takes
        the first its study has not tried that the room pays for
        (``hptune.pipeline._spare``).

        Args:
            ranking: The phase's ranking of its finished trials.
            outcomes: Every finished trial.

        Returns:
            Each configuration's parameters (the keys ``suggest`` reads).
        """
        return []

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


class SingleRunPhase(Phase):
    """A phase of one trial at the configuration it starts from (the baseline, the final
    evaluation); it takes ``Phase``'s arguments."""

    #: The phase in a few words, for ``hptune plan``.
    what: ClassVar[str]

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        return PhaseBudget.full(1, base.epochs, cls.what)

    def n_trials(self) -> int:
        return 1

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        return base
