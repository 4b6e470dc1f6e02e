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
    """One phase's budget: trials x seeds x epochs, as an upper bound on seed-epochs."""

    phase: str
    trials: int
    epochs: str  # "2", or "2-4" for the epochs phase
    seed_epochs: int
    what: str


@dataclass
class Plan:
    """The whole run as it would start now."""

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
        return sum(p.seed_epochs for p in self.phases)

    @property
    def train_examples(self) -> int:
        """Training examples processed at most (pruning and early stopping only lower it)."""
        return self.seed_epochs * self.n_train


def planned_phases(
    config: TuneConfig, hp: HParams, n_train: int, *, has_test: bool
) -> list[PlannedPhase]:
    """Each configured phase's budget in trials and seed-epochs (an upper bound)."""
    from hptune.phases import default_epoch_range

    n = len(config.objective.seed_list)
    options = config.phases
    epoch_range = options.epochs.range or default_epoch_range(n_train)
    later_epochs = epoch_range[1] if "epochs" in options.run else hp.epochs
    later = str(later_epochs) if "epochs" not in options.run else f"<= {later_epochs}"
    budget = {
        "baseline": (1, str(hp.epochs), n * hp.epochs, "the presets' configuration"),
        "learning_rate": (
            len(options.learning_rate.grid),
            str(hp.epochs),
            len(options.learning_rate.grid) * n * hp.epochs,
            "grid " + ", ".join(f"{lr:g}" for lr in options.learning_rate.grid),
        ),
        "batch_size": (
            options.batch_size.n_trials,
            str(hp.epochs),
            options.batch_size.n_trials * n * hp.epochs,
            f"largest fitting batch first, effective batch {hp.effective_batch_size}"
            + (" kept" if options.batch_size.keep_effective_batch else " free"),
        ),
        "epochs": (
            epoch_range[1] - epoch_range[0] + 1,
            f"{epoch_range[0]}-{epoch_range[1]}",
            n * sum(range(epoch_range[0], epoch_range[1] + 1)),
            "each epoch count" + (", median pruning" if options.epochs.pruning else ""),
        ),
        "regularization": (
            options.regularization.n_trials,
            later,
            options.regularization.n_trials * n * later_epochs,
            "weight decay, scheduler, warmup (multivariate TPE"
            + (", median pruning)" if options.regularization.pruning else ")"),
        ),
    }
    phases = [PlannedPhase(name, *budget[name]) for name in options.run]
    if options.test_evaluation and has_test:
        what = "the chosen configuration, measured on the test split"
        phases.append(PlannedPhase("final", 1, later, n * later_epochs, what))
    return phases


def make_plan(config: TuneConfig | str | os.PathLike[str]) -> Plan:
    """Plan ``config``: loads the tokenizer and data (for sizes and checks), trains nothing."""
    from hptune import guardrails
    from hptune.pipeline import resolve_hparams
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
        from hptune.phases import BatchSizePhase
        from hptune.pipeline import make_phase

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
