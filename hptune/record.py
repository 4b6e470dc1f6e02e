"""A run read back from its storage: each phase's study, decision and outcomes.

The one place that turns stored studies into what hptune shows and reuses: ``hptune
status``, ``export``, ``report`` and ``diagnose`` read through ``RunRecord``, and the
pipeline asks it for a configuration an earlier phase already trained. Which trials count as
a phase's evidence is defined here once (``decision_outcomes``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hptune import keys
from hptune._lazy import optuna
from hptune.diagnose import Diagnosis, diagnose_trial
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.ledger import trained_so_far
from hptune.phases import PHASES, Decision, TrialOutcome
from hptune.storage import open_storage
from hptune.stored import is_failed, is_scored
from hptune.train import RunResult

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from hptune.config import TuneConfig

__all__ = [
    "PhaseState",
    "RunRecord",
    "StoredPhase",
    "configured_phases",
    "decision_outcomes",
    "diagnosed_phases",
    "finished_outcomes",
    "outcome_from_trial",
]

#: Where a phase stands: decided, started, or not started.
PhaseState = Literal["done", "in progress", "pending"]


def outcome_from_trial(trial: optuna.trial.FrozenTrial) -> TrialOutcome:
    """What a phase needs of a finished trial: parameters, seed values, status, diagnoses.

    Args:
        trial: A trial of a phase's study.

    Returns:
        The trial as phases, tables and reports see it.
    """
    attrs = trial.user_attrs
    return TrialOutcome(
        trial.number,
        dict(trial.params),
        {int(s): float(v) for s, v in attrs.get(keys.SEED_VALUES, {}).items()},
        keys.status_of(trial),
        examples_per_second=attrs.get(keys.EXAMPLES_PER_SECOND),
        tokens_per_second=attrs.get(keys.TOKENS_PER_SECOND),
        test_values={int(s): float(v) for s, v in attrs.get(keys.TEST_VALUES, {}).items()},
        diagnoses=tuple(d.kind for d in diagnose_trial(trial)),
    )


def decision_outcomes(trials: list[optuna.trial.FrozenTrial]) -> list[TrialOutcome]:
    """The trials a phase decides on: complete and pruned ones, and those out of memory.

    Any other failed trial is retried before the phase decides, so it is not evidence. A
    racing trial (``keys.RACE_OF``) is not an outcome of its own: its seeds join those of
    the trial it races for, and a seed that diverged marks that trial diverged.

    Args:
        trials: A phase's trials, in any state.

    Returns:
        Those trials as outcomes, in the order given.
    """
    return _with_racing_seeds(
        [t for t in trials if is_scored(t) or (is_failed(t) and keys.is_oom(t))]
    )


def _with_racing_seeds(trials: list[optuna.trial.FrozenTrial]) -> list[TrialOutcome]:
    """``trials`` as outcomes, each racing trial's seeds joined to the trial it races for
    (a seed that diverged marks that trial diverged); racing trials are not outcomes."""
    outcomes = {t.number: outcome_from_trial(t) for t in trials if keys.RACE_OF not in t.user_attrs}
    for t in trials:
        target = outcomes.get(t.user_attrs.get(keys.RACE_OF, -1))
        if target is None or target.status != TrialStatus.OK:
            continue  # failed or interrupted racing trials add nothing (their status says so)
        raced = outcome_from_trial(t)
        if raced.status == TrialStatus.OK:
            merged = {**target.seed_values, **raced.seed_values}
            outcomes[target.number] = dataclasses.replace(
                target, seed_values=merged, diagnoses=target.diagnoses + raced.diagnoses
            )
        elif raced.status == TrialStatus.DIVERGED:  # a configuration that diverges on a seed
            outcomes[target.number] = dataclasses.replace(
                target, seed_values={}, status=TrialStatus.DIVERGED
            )
    return list(outcomes.values())


def finished_outcomes(trials: list[optuna.trial.FrozenTrial]) -> list[TrialOutcome]:
    """Every finished trial, failed attempts included (what a report shows); racing trials'
    seeds join the trial they race for, as in ``decision_outcomes``.

    Args:
        trials: A phase's trials, in any state.

    Returns:
        The finished ones as outcomes, in the order given.
    """
    return _with_racing_seeds([t for t in trials if t.state.is_finished()])


def diagnosed_phases(phase: str | None = None, trial: int | None = None) -> list[str]:
    """The phases a diagnosis covers: ``phase``, or every phase and ``final``.

    Args:
        phase: Only this phase.
        trial: Only this trial number (needs ``phase``).

    Returns:
        Phase names.

    Raises:
        ConfigError: A trial number without a phase, or an unknown phase.
    """
    if trial is not None and phase is None:
        raise ConfigError("--trial needs --phase: trial numbers count within a phase's study")
    names = list(PHASES)  # the method's phases, then "final"
    if phase is not None and phase not in names:
        raise ConfigError(f"unknown phase {phase!r}; use one of {', '.join(names)}")
    return [phase] if phase else names


def configured_phases(config: TuneConfig) -> list[str]:
    """The phases ``config`` runs, then ``final`` when the test evaluation may run.

    Args:
        config: The run's configuration (``phases.run``, ``phases.test_evaluation`` and
            whether the data has a test split).

    Returns:
        Phase names, in the order they run.
    """
    names: list[str] = list(config.phases.run)
    if config.phases.test_evaluation and (config.data.test or config.data.dataset is not None):
        names.append("final")
    return names


@dataclass
class StoredPhase:
    """One phase of a run as its storage holds it.

    Args:
        phase: The phase's name.
        study_name: Its study's name (``<name>.<phase>``).
        study: Its study, or None until the phase starts.
        trials: The study's trials.
        user_attrs: The study's user attributes, read once with the trials (so the state
            and the decision come from one reading, even while a worker decides).
    """

    phase: str
    study_name: str
    study: optuna.Study | None  # None until the phase starts
    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    user_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def decision(self) -> Decision | None:
        """The phase's decision, once it has one."""
        text = self.user_attrs.get(keys.DECISION)
        return None if text is None else Decision.from_json(text)

    @property
    def state(self) -> PhaseState:
        """``done`` once decided, ``in progress`` once started, else ``pending``."""
        if self.study is None:
            return "pending"
        return "done" if keys.DECISION in self.user_attrs else "in progress"

    @property
    def outcomes(self) -> list[TrialOutcome]:
        """The trials the decision was (or will be) taken on: ``decision_outcomes``."""
        return decision_outcomes(self.trials)


class RunRecord:
    """Read a run's phases from its storage; never creates or changes anything.

    Args:
        config: The run's configuration (its name, storage and phases).
        storage: An open storage; by default the configuration's, which must exist.

    Raises:
        NoStorageYet: No storage yet: nothing has run.
        ConfigError: The storage cannot be opened.
    """

    def __init__(
        self, config: TuneConfig, storage: optuna.storages.BaseStorage | None = None
    ) -> None:
        self.config = config
        self.storage = storage if storage is not None else open_storage(config, must_exist=True)

    @property
    def phase_names(self) -> list[str]:
        """The configured phases, then ``final`` when the test evaluation may run."""
        return configured_phases(self.config)

    def _existing(self) -> set[str]:
        return {s.study_name for s in optuna.get_all_study_summaries(self.storage)}

    def phase(self, name: str, *, existing: set[str] | None = None) -> StoredPhase:
        """Phase ``name``'s study and trials (none when it has not started).

        Args:
            name: A phase's name (``final`` for the test evaluation).
            existing: The storage's study names, when already read (saves a read).

        Returns:
            The phase as stored.
        """
        study_name = self.config.study_name(name)
        if study_name not in (existing if existing is not None else self._existing()):
            return StoredPhase(name, study_name, None)
        study = optuna.load_study(study_name=study_name, storage=self.storage)
        user_attrs = dict(study.user_attrs)
        return StoredPhase(name, study_name, study, study.get_trials(deepcopy=False), user_attrs)

    def phases(self, names: list[str] | None = None) -> list[StoredPhase]:
        """Each of ``names`` (default: ``phase_names``) in order.

        Args:
            names: Phase names; by default the configured phases, then ``final`` when the
                test evaluation may run.

        Returns:
            One ``StoredPhase`` per name.
        """
        existing = self._existing()
        return [self.phase(n, existing=existing) for n in names or self.phase_names]

    def environment(self) -> dict[str, Any]:
        """What the first phase recorded of its machine (device, precision, backend,
        library versions) and of its data's preparation (``preparation``)."""
        for stored in self.phases():
            if keys.ENVIRONMENT in stored.user_attrs:
                setup = stored.user_attrs.get(keys.SETUP, {})
                preparation = setup.get("preparation", {})
                return {**stored.user_attrs[keys.ENVIRONMENT], "preparation": preparation}
        return {}

    def budget_fit(self) -> dict[str, Any] | None:
        """The budget fit the latest-started phase recorded in its setup
        (``hptune.budget.BudgetFit.to_stored``); None when the run had no budget."""
        fit = None
        for stored in self.phases():
            fit = stored.user_attrs.get(keys.SETUP, {}).get(keys.SETUP_BUDGET_FIT, fit)
        return fit

    def fitted_config(self) -> TuneConfig:
        """The configuration as the run ran it: with its stored budget fit's cuts made."""
        config = self.config
        for cut in (self.budget_fit() or {}).get("cuts", []):  # hptune.budget.Cut.to_dict
            config = config.with_changes(cut["changes"])
        return config

    def trained(self) -> dict[str, float]:
        """What the run has trained so far (see ``hptune.ledger.trained_so_far``).

        Returns:
            ``seed_epochs``, ``gpu_seconds``, ``examples``, ``seconds`` and ``reserved``.
        """
        return trained_so_far(self.config, self.storage)

    def decided_hparams(self) -> tuple[HParams, dict[str, Decision]]:
        """The configuration the configured phases decided, and each phase's decision.

        Returns:
            The phases' base configuration with every decision applied, and the decisions
            by phase (``final`` too when the test evaluation has run).

        Raises:
            ConfigError: A configured phase has no decision yet.
        """
        hp: HParams | None = None
        decisions: dict[str, Decision] = {}
        for stored in self.phases([*self.config.phases.run, "final"]):
            decision = stored.decision
            if stored.phase == "final":
                if decision is not None:
                    decisions["final"] = decision
                continue
            if decision is None:
                raise ConfigError(
                    f"phase {stored.phase!r} has no decision yet in "
                    f"{self.config.storage_display!r}; run 'hptune run' on this configuration "
                    "until it finishes, then export"
                )
            if hp is None:
                hp = HParams.from_dict(stored.user_attrs[keys.SETUP]["base_hparams"])
            hp = decision.apply(hp)
            decisions[stored.phase] = decision
        assert hp is not None  # phases.run is never empty
        return hp, decisions

    def find_trained(
        self, hp: HParams, seeds: Sequence[int] | None = None
    ) -> tuple[str, list[dict[str, Any]]] | None:
        """A finished trial of this run (any phase) that trained ``hp`` on the same seeds;
        for a length-free schedule (``HParams.length_free``), also one that trained it for
        more epochs, read at ``hp.epochs`` (its first epochs are ``hp``'s whole run).

        Args:
            hp: The configuration to look for.
            seeds: The seeds (default: the configured ones; a racing trial's extra seeds).

        Returns:
            Where it was (``study#number``, and the epochs read of a longer run) and its
            per-seed runs, or None.
        """
        wanted_seeds = {
            str(s) for s in (self.config.objective.seed_list if seeds is None else seeds)
        }
        wanted = hp.to_dict()
        longer: tuple[int, str, list[dict[str, Any]]] | None = None
        for name, t in self._finished_trials():
            attrs = t.user_attrs
            stored = attrs.get(keys.HPARAMS)
            if stored is None or set(attrs.get(keys.SEED_VALUES, {})) != wanted_seeds:
                continue
            if stored == wanted:
                return f"{name}#{t.number}", list(attrs[keys.RUNS])
            epochs = int(stored.get("epochs", 0))
            same_otherwise = {**stored, "epochs": hp.epochs} == wanted
            nearest = longer is None or epochs < longer[0]
            if hp.length_free and same_otherwise and hp.epochs < epochs and nearest:
                longer = (epochs, f"{name}#{t.number}", list(attrs[keys.RUNS]))
        if longer is None:
            return None
        epochs, source, runs = longer
        prefixes = [RunResult.from_dict(r).prefix(hp.epochs).to_dict() for r in runs]
        return f"{source} (its first {hp.epochs} of {epochs} epochs)", prefixes

    def _finished_trials(self) -> Iterator[tuple[str, optuna.trial.FrozenTrial]]:
        """Every trial of the run's studies (the test evaluation's aside) that finished with
        its runs stored, with its study's name."""
        existing = self._existing()
        for phase in PHASES:
            if phase == "final":  # the test evaluation: never a configuration to reuse
                continue
            name = self.config.study_name(phase)
            if name not in existing:
                continue
            study = optuna.load_study(study_name=name, storage=self.storage)
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                if keys.stored_status(t) == TrialStatus.OK and keys.RUNS in t.user_attrs:
                    yield name, t

    def diagnoses(
        self, *, phase: str | None = None, trial: int | None = None
    ) -> list[tuple[str, int, Diagnosis]]:
        """Every seed of every trial diagnosed (or of one phase, or one trial).

        Args:
            phase: Only this phase.
            trial: Only this trial number of ``phase``.

        Returns:
            ``(phase, trial number, diagnosis)`` rows, one per seed.

        Raises:
            ConfigError: An unknown phase, a trial number without a phase, or no such trial.
        """
        names = diagnosed_phases(phase, trial)
        config = self.config
        dropout = config.method.dropout if config.method.type != "full" else None
        rows: list[tuple[str, int, Diagnosis]] = []
        for stored in self.phases(names):
            for t in stored.trials:
                if trial is None or t.number == trial:
                    diagnoses = diagnose_trial(t, dropout=dropout)
                    rows.extend((stored.phase, t.number, d) for d in diagnoses)
        if trial is not None and not rows:
            raise ConfigError(f"phase {phase!r} has no trial {trial} with curves")
        return rows
