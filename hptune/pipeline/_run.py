"""Orchestration: the configured phases in order, each in its own study of one storage.

Each phase's decision is stored on its study; a phase that already has one is not run
again, so ``hptune run`` after an interruption goes on with the first undecided phase.
"""

from __future__ import annotations

import functools
from typing import Any

from hptune import guardrails
from hptune._signals import deferred_interrupts
from hptune.budget import BudgetFit
from hptune.config import TuneConfig
from hptune.diagnose import Diagnosis, diagnose_curves
from hptune.guardrails import Finding
from hptune.hparams import HParams
from hptune.ledger import BudgetLedger, trained_by_phase
from hptune.objective import ProgressCallback, SeedObjective
from hptune.phases import PHASES, Phase, make_phase
from hptune.pipeline._decide import stored_result
from hptune.pipeline._queue import work_through_queue
from hptune.pipeline._setup import check_same_setup
from hptune.plan import Start, planned_phases, starting_point
from hptune.record import RunRecord
from hptune.results import PhaseResult, TuneResult
from hptune.storage import open_storage, single_worker_guard
from hptune.train import RunnerBase, make_runner
from hptune.train.data import PreparedData
from hptune.train.distributed import is_data_parallel, run_data_parallel
from hptune.train.target import throughput_estimate

__all__ = ["incoming_diagnoses", "run_phase", "tune"]

from hptune._lazy import optuna


def tune(
    config: TuneConfig,
    *,
    progress: ProgressCallback | None = None,
    runner: RunnerBase | None = None,
) -> TuneResult:
    """Run every configured phase that has no decision yet; return all decisions.

    Each phase starts from the decisions of the phases before it. Everything that can be
    refused (paths, method support, data) is checked before the storage is opened, so a bad
    configuration leaves no trace in it. Ends with the test-split evaluation of the chosen
    configuration when the data has a test split and ``phases.test_evaluation`` is on.

    Args:
        config: The run's configuration.
        progress: Called with each progress event (a dict with an ``event`` key).
        runner: The trainer (default: ``hptune.train.make_runner(config)``: the configured
            backend).

    Returns:
        The final configuration, each phase's decision and evidence, and the guardrails'
        findings.

    Raises:
        HptuneError: A refused configuration, data or model (nothing is stored).
        Interrupted: SIGINT or SIGTERM stopped the run at a safe point; running it again
            resumes it.
    """
    config.check_paths()
    with deferred_interrupts():
        if is_data_parallel():  # accelerate launch: process 0 runs the pipeline, others follow
            return run_data_parallel(config, lambda r: _tune(config, progress, r), runner)
        return _tune(config, progress, runner or make_runner(config))


def _tune(config: TuneConfig, progress: ProgressCallback | None, runner: RunnerBase) -> TuneResult:
    start = starting_point(config, runner)  # a budget fit the run recorded is made again
    # The configuration fitted into the budget is the one every phase (and the runner) uses.
    config, runner = start.config, runner.with_config(start.config)
    hp = start.hparams
    findings = _check_guardrails(config, start, runner.data, progress)
    with single_worker_guard(config):
        storage = open_storage(config)
        result = TuneResult(
            hp, start.sources, guardrails=findings, budget=start.budget, storage=storage
        )
        if progress is not None:
            _announce_run(config, start, runner, progress)
        run = functools.partial(
            run_phase, runner=runner, storage=storage, progress=progress, budget=start.budget
        )
        for name in config.phases.run:
            phase_result = run(config, name, hp)
            result.phases.append(phase_result)
            hp = phase_result.decision.apply(hp)
        result.hparams = hp
        if config.phases.test_evaluation and runner.data.test is not None:
            result.final = run(config, "final", hp)
        return result


def _announce_run(
    config: TuneConfig, start: Start, runner: RunnerBase, progress: ProgressCallback
) -> None:
    """The run's budget fit and what each phase will train, as progress events."""
    has_test = runner.data.test is not None
    plan = planned_phases(config, start.hparams, runner.data.n_train, has_test=has_test)
    if start.budget is not None:
        progress({"event": "budget", "fit": start.budget})
    progress(
        {
            "event": "run_start",
            "seed_epochs": {p.phase: p.seed_epochs for p in plan},
            "without_racing": {p.phase: p.seed_epochs - p.racing for p in plan},
            "n_seeds": len(config.objective.seed_list),
            "throughput": start.throughput,
        }
    )


def _check_guardrails(
    config: TuneConfig, start: Start, data: PreparedData, progress: ProgressCallback | None
) -> list[Finding]:
    """Check the "never do" list for the run's start; report each finding as a ``guardrail``
    event; refuse errors (``guardrails.strict``, raising ``ConfigError``) before the storage
    is opened. Returns the findings (warnings, and errors when not strict)."""
    findings = guardrails.check(config, start.hparams, data, start.memory)
    if progress is not None:
        for finding in findings:
            progress({"event": "guardrail", "finding": finding})
    guardrails.enforce(findings)
    return findings


def incoming_diagnoses(
    config: TuneConfig, storage: optuna.storages.BaseStorage, hp: HParams
) -> list[Diagnosis]:
    """How the configuration ``hp`` trained in an earlier phase of this run, seed by seed.

    Args:
        config: The run's configuration.
        storage: The run's storage.
        hp: The configuration a phase starts from.

    Returns:
        One diagnosis per seed of the trial that trained ``hp``; empty when none did.
    """
    found = RunRecord(config, storage).find_trained(hp)
    if found is None:
        return []
    return [
        diagnose_curves(
            [e["train_loss"] for e in run["epochs"]],
            [e["eval_loss"] for e in run["epochs"]],
            hparams=hp,
            seed=run.get("seed"),
            initial_eval_loss=run.get("initial_eval_loss"),
        )
        for run in found[1]
    ]


def run_phase(
    config: TuneConfig,
    name: str,
    base: HParams,
    *,
    runner: RunnerBase | None = None,
    storage: optuna.storages.BaseStorage | None = None,
    progress: ProgressCallback | None = None,
    budget: BudgetFit | None = None,
) -> PhaseResult:
    """Run one phase from the configuration ``base`` (or reuse its stored decision).

    Args:
        config: The run's configuration.
        name: The phase (a key of ``hptune.phases.PHASES``).
        base: The configuration it starts from.
        runner: The trainer (default: ``hptune.train.make_runner(config)``).
        storage: The run's storage (default: opened from ``config``).
        progress: Called with each progress event.
        budget: The budget fit ``config`` was cut by, recorded in the phase's setup.

    Returns:
        The phase's decision and the trials it was taken on.

    Raises:
        ValueError: An unknown phase name.
        ConfigError: The storage cannot be opened, the phase's options do not fit ``base``,
            or its study was started from another setup.
        DataError: The data cannot be read (when no ``runner`` is given).
        ModelError: The tokenizer cannot be loaded (when no ``runner`` is given).
    """
    runner = runner or make_runner(config)
    storage = storage or open_storage(config)
    uses_incoming = name in PHASES and PHASES[name].uses_incoming
    incoming = incoming_diagnoses(config, storage, base) if uses_incoming else []
    phase = make_phase(name, config, runner, base, incoming=incoming)
    fit = budget.to_stored() if budget is not None else None
    phase_result = _run_phase(config, storage, phase, base, runner, progress, fit)
    if progress is not None:
        # what the phase trained, racing's part of it, for the run to show phase by phase
        spent = trained_by_phase(config, storage).get(phase.name, {})
        progress(
            {"event": "phase_done", "phase": phase.name, "result": phase_result, "spent": spent}
        )
    return phase_result


def _run_phase(
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    phase: Phase,
    base: HParams,
    runner: RunnerBase,
    progress: ProgressCallback | None,
    budget_fit: dict[str, Any] | None,
) -> PhaseResult:
    study = optuna.create_study(
        storage=storage,
        study_name=config.study_name(phase.name),
        direction=config.objective.goal,
        sampler=phase.create_sampler(),
        pruner=phase.create_pruner(),
        load_if_exists=True,
    )
    check_same_setup(study, phase, base, config, runner, budget_fit)
    decided = stored_result(study, phase, reused=True)
    if decided is not None:
        return decided
    if progress is not None:
        remaining = phase.n_remaining(study.get_trials(deepcopy=False))
        seed_epochs = remaining * len(config.objective.seed_list) * phase.max_epochs(base)
        progress(
            {
                "event": "phase_start",
                "phase": phase.name,
                "n_trials": phase.n_trials(),
                "seed_epochs": seed_epochs,
            }
        )
    reuse = RunRecord(config, storage).find_trained
    ledger = _ledger(config, storage, runner, budget_fit)
    objective = SeedObjective(runner, phase, base, progress=progress, reuse=reuse, budget=ledger)
    return work_through_queue(config, storage, study, phase, base, objective, progress)


def _ledger(
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    runner: RunnerBase,
    budget_fit: dict[str, Any] | None,
) -> BudgetLedger | None:
    """What the run has trained, kept to its compute budget; None without a budget."""
    if config.budget is None:
        return None
    # the throughput the fit converted GPU hours at, until the run measures its own
    rate = (budget_fit or {}).get("examples_per_second")
    if rate is None and (estimate := throughput_estimate(config, runner)) is not None:
        rate = estimate[0]
    has_test = runner.data.test is not None
    return BudgetLedger(config, storage, runner.data.n_train, rate, has_test=has_test)
