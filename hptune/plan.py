"""What a run would do, without training: phases, trial counts, compute, presets, guardrails."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hptune.config import TuneConfig, load_config

if TYPE_CHECKING:
    from hptune.guardrails import Finding
    from hptune.hparams import HParams

__all__ = ["Plan", "PlannedPhase", "make_plan", "planned_phases"]


@dataclass(frozen=True)
class PlannedPhase:
    """One phase's budget: trials x seeds x epochs, as an upper bound on seed-epochs.

    Args:
        phase: The phase's name.
        trials: Trials it runs at most.
        epochs: Epochs per trial, as shown: ``2``, ``2-4`` or ``<= 4``.
        seed_epochs: Epochs of all its trials on every seed.
        what: The phase in a few words.
    """

    phase: str
    trials: int
    epochs: str  # "2", or "2-4" for the epochs phase
    seed_epochs: int
    what: str


@dataclass
class Plan:
    """The whole run as it would start now.

    Args:
        hparams: The starting configuration.
        sources: Where each starting value came from.
        phases: Each phase's budget, in order.
        seeds: The seeds every trial trains on.
        n_train: Training examples.
        guardrails: The guardrails' findings.
        storage: The storage URL, its password masked.
        memory: The batch phase's memory table (when it runs).
    """

    hparams: HParams
    sources: dict[str, str]
    phases: list[PlannedPhase]
    seeds: list[int]
    n_train: int
    guardrails: list[Finding]
    storage: str
    memory: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seed_epochs(self) -> int:
        """Epochs of every phase's trials on every seed, at most."""
        return sum(p.seed_epochs for p in self.phases)

    @property
    def train_examples(self) -> int:
        """Training examples processed at most (pruning and early stopping only lower it)."""
        return self.seed_epochs * self.n_train


def planned_phases(
    config: TuneConfig, hp: HParams, n_train: int, *, has_test: bool
) -> list[PlannedPhase]:
    """Each configured phase's budget in trials and seed-epochs (an upper bound).

    Each phase states its own budget (``hptune.phases.Phase.planned``); a phase that
    decides the epochs passes its upper bound to the phases after it. Racing's extra seeds
    (``objective.max_seeds``) are counted: the best and up to three contenders, each once
    per extra seed, at the phase's longest run.

    Args:
        config: The run's configuration.
        hp: The starting configuration.
        n_train: Training examples.
        has_test: Whether the data has a test split (the final evaluation runs).

    Returns:
        One row per phase that would run, in order.
    """
    from hptune.phases import PHASES, racing_trials_at_most

    n = len(config.objective.seed_list)
    extra = len(config.objective.racing_seeds)
    names: list[str] = list(config.phases.run)
    if config.phases.test_evaluation and has_test:
        names.append("final")
    bounded: set[str] = set()
    planned = []
    for name in names:
        budget = PHASES[name].planned(config, hp, n_train)
        low, high = budget.epochs
        epochs = (
            f"{low}-{high}" if low != high else f"<= {high}" if "epochs" in bounded else str(high)
        )
        # Racing adds seeds to a few configurations not yet told apart, at their length.
        racing = racing_trials_at_most(extra, budget.trials) * high if name != "final" else 0
        what = budget.what + (
            f", racing up to {config.objective.max_seeds} seeds" if racing else ""
        )
        planned.append(PlannedPhase(name, budget.trials, epochs, n * budget.seed_epochs + racing,
                                    what))  # fmt: skip
        hp = hp.replace(**budget.bounds)
        bounded |= set(budget.bounds)
    return planned


def make_plan(config: TuneConfig | str | os.PathLike[str]) -> Plan:
    """Plan ``config``: loads the tokenizer and data (for sizes and checks), trains nothing.

    Args:
        config: The configuration, or the path of its YAML file.

    Returns:
        The starting configuration, each phase's budget, the batch phase's memory table and
        the guardrails' findings.

    Raises:
        ConfigError: The configuration is invalid.
        DataError: The data cannot be read.
    """
    from hptune import guardrails
    from hptune.phases import BatchSizePhase, make_phase
    from hptune.presets import resolve_hparams
    from hptune.train import Runner

    if not isinstance(config, TuneConfig):
        config = load_config(config)
    config.check_paths()
    runner = Runner(config)
    hp, sources = resolve_hparams(config, runner.data.n_train)
    seeds = config.objective.seed_list
    phases = planned_phases(config, hp, runner.data.n_train, has_test=runner.data.test is not None)
    memory = []
    if "batch_size" in config.phases.run:
        batch_phase = make_phase("batch_size", config, runner, hp)
        assert isinstance(batch_phase, BatchSizePhase)
        memory = batch_phase.memory_table()
    return Plan(
        hparams=hp,
        sources=sources,
        phases=phases,
        seeds=seeds,
        n_train=runner.data.n_train,
        guardrails=guardrails.check(config, hp, runner.data),
        storage=config.storage_display,
        memory=memory,
    )
