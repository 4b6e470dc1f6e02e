"""The pipeline: the configured phases in order, each in its own study of one storage.

Each phase's decision is stored on its study; a phase that already has one is not run
again, so ``hptune run`` after an interruption goes on with the first undecided phase.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hptune._signals import deferred_interrupts, raise_if_interrupted
from hptune.config import PHASE_NAMES, TuneConfig
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.phases import (
    DECISION_ATTR,
    BaselinePhase,
    BatchSizePhase,
    Decision,
    EpochsPhase,
    LearningRatePhase,
    Phase,
    RegularizationPhase,
    TestEvaluation,
    default_epoch_range,
)
from hptune.presets import fill_training
from hptune.storage import (
    HEARTBEAT_ATTR,
    Heartbeat,
    claim_waiting_trial,
    fail_stale_trials,
    open_storage,
    queue_lock,
    single_worker_guard,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

    from hptune.diagnose import Diagnosis
    from hptune.guardrails import Finding
    from hptune.objective import ProgressCallback, ReuseLookup
    from hptune.phases import TrialOutcome
    from hptune.train import Runner
    from hptune.train.data import PreparedData

__all__ = [
    "PhaseResult",
    "TuneResult",
    "check_guardrails",
    "incoming_diagnoses",
    "make_phase",
    "memory_limit_bytes",
    "resolve_hparams",
    "run_phase",
    "tune",
    "work_through_queue",
]


@dataclass
class PhaseResult:
    """A phase's study, its finished trials and its decision."""

    phase: str
    study_name: str
    decision: Decision
    outcomes: list[TrialOutcome]
    reused: bool  # decided by an earlier run; nothing was trained this time


@dataclass
class TuneResult:
    """What a run decided: the final configuration and each phase's evidence."""

    hparams: HParams
    sources: dict[str, str]
    phases: list[PhaseResult] = field(default_factory=list)
    final: PhaseResult | None = None  # the test-split evaluation, when one ran
    guardrails: list[Finding] = field(default_factory=list)


def make_phase(
    name: str,
    config: TuneConfig,
    runner: Runner,
    base: HParams,
    *,
    incoming: list[Diagnosis] | None = None,
) -> Phase:
    """The phase ``name`` configured from ``config``, starting from the configuration ``base``.

    Phases are made when they start, because some depend on earlier decisions (the batch
    phase keeps the effective batch the phases before it used) and on how the incoming
    configuration trained (``incoming``: its seeds' diagnoses): when it overfits, the epochs
    phase also tries the epoch where validation was best, and the regularization phase
    searches the upper half of the weight-decay range.
    """
    overfits = _overfit_epochs(incoming or [])
    options = config.phases
    phase: Phase
    if name == "baseline":
        phase = BaselinePhase()
    elif name == "learning_rate":
        phase = LearningRatePhase(
            options.learning_rate.grid, tie_break=options.learning_rate.tie_break
        )
    elif name == "batch_size":
        phase = _batch_size_phase(config, runner, base)
    elif name == "epochs":
        low, high = options.epochs.range or default_epoch_range(runner.data.n_train)
        note = None
        if overfits and min(overfits) < low:
            note = (f"the incoming configuration overfits (best validation at epoch "
                    f"{min(overfits)}), so the range starts there instead of {low}")  # fmt: skip
            low = min(overfits)
        phase = EpochsPhase((low, max(high, low + 1)), pruning=options.epochs.pruning)
        phase.notes = (note,) if note else ()
    elif name == "regularization":
        reg = options.regularization
        weight_decay = reg.weight_decay
        note = None
        if overfits:
            middle = round((weight_decay[0] * weight_decay[1]) ** 0.5, 4)
            note = (f"the incoming configuration overfits, so weight decay was searched in "
                    f"[{middle:g}, {weight_decay[1]:g}]")  # fmt: skip
            weight_decay = (middle, weight_decay[1])
        phase = RegularizationPhase(
            n_trials=reg.n_trials,
            weight_decay=weight_decay,
            warmup_ratio=reg.warmup_ratio,
            schedulers=list(reg.schedulers),
            pruning=reg.pruning,
            sampler_seed=reg.sampler_seed,
        )
        phase.notes = (note,) if note else ()
    elif name == "final":
        phase = TestEvaluation()
    else:
        raise ValueError(f"unknown phase {name=}; use one of {', '.join(PHASE_NAMES)}")
    phase.max_retries = config.max_retries
    return phase


def _overfit_epochs(diagnoses: list[Diagnosis]) -> list[int]:
    """The best epochs of the seeds diagnosed as overfitting, when most seeds are."""
    over = [d for d in diagnoses if d.kind == "overfitting"]
    if not diagnoses or 2 * len(over) <= len(diagnoses):
        return []
    return [int(d.remedy["training.epochs"]) for d in over if "training.epochs" in d.remedy]


def incoming_diagnoses(
    config: TuneConfig, storage: optuna.storages.BaseStorage, hp: HParams
) -> list[Diagnosis]:
    """How the configuration ``hp`` trained in an earlier phase of this run, seed by seed."""
    from hptune.diagnose import diagnose_curves

    found = _reuse_lookup(config, storage)(hp)
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


def memory_limit_bytes(config: TuneConfig) -> float | None:
    """The memory a training step may use: configured, else the GPU's, else no limit (CPU)."""
    gb = config.phases.batch_size.memory_limit_gb or config.training.gpu_memory_gb
    if gb is not None:
        return gb * 2**30
    import torch

    if torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory)
    return None


def _batch_size_phase(config: TuneConfig, runner: Runner, base: HParams) -> BatchSizePhase:
    from hptune.train.memory import MemoryModel

    options = config.phases.batch_size
    memory = MemoryModel.for_model(
        config.model,
        config.method,
        sequence_length=runner.data.max_train_length,
        gradient_checkpointing=config.training.gradient_checkpointing,
    )
    if options.probe:
        memory = memory.calibrated(runner.probe_memory([1, 2]))
    try:
        return BatchSizePhase(
            base,
            n_trials=options.n_trials,
            predict_bytes=memory.predict,
            memory_limit_bytes=memory_limit_bytes(config),
            safety_margin=options.safety_margin,
            keep_effective_batch=options.keep_effective_batch,
            candidates=options.candidates,
        )
    except ValueError as exc:
        raise ConfigError(f"phases.batch_size: {exc}") from None


def resolve_hparams(config: TuneConfig, n_train: int) -> tuple[HParams, dict[str, str]]:
    """The baseline configuration: the user's values, filled from the presets."""
    training = config.training
    values, sources = fill_training(
        training.model_dump(),
        method=config.method.type,
        situation=training.situation,
        gpu_memory_gb=training.gpu_memory_gb,
        n_train_examples=n_train,
    )
    hp = HParams(**values, scheduler=training.scheduler, max_grad_norm=training.max_grad_norm)
    return hp, sources


def tune(
    config: TuneConfig, *, progress: ProgressCallback | None = None, runner: Runner | None = None
) -> TuneResult:
    """Run every configured phase that has no decision yet; return all decisions.

    Each phase starts from the decisions of the phases before it. Everything that can be
    refused (paths, method support, data) is checked before the storage is opened, so a bad
    configuration leaves no trace in it. Ends with the test-split evaluation of the chosen
    configuration when the data has a test split and ``phases.test_evaluation`` is on.
    """
    from hptune.train import Runner
    from hptune.train.distributed import is_data_parallel, run_data_parallel

    config.check_paths()
    with deferred_interrupts():
        if is_data_parallel():  # accelerate launch: process 0 runs the pipeline, others follow
            return run_data_parallel(config, lambda r: _tune(config, progress, r), runner)
        return _tune(config, progress, runner or Runner(config))


def _tune(config: TuneConfig, progress: ProgressCallback | None, runner: Runner) -> TuneResult:
    hp, sources = resolve_hparams(config, runner.data.n_train)
    findings = check_guardrails(config, hp, runner.data, progress)
    with single_worker_guard(config):
        storage = open_storage(config)
        result = TuneResult(hparams=hp, sources=sources, guardrails=findings)
        if progress is not None:
            from hptune.plan import planned_phases

            has_test = runner.data.test is not None
            plan = planned_phases(config, hp, runner.data.n_train, has_test=has_test)
            progress({"event": "run_start", "seed_epochs": {p.phase: p.seed_epochs for p in plan}})
        for name in config.phases.run:
            phase_result = run_phase(config, name, hp, runner=runner, storage=storage,
                                     progress=progress)  # fmt: skip
            result.phases.append(phase_result)
            hp = phase_result.decision.apply(hp)
        result.hparams = hp
        if config.phases.test_evaluation and runner.data.test is not None:
            result.final = run_phase(config, "final", hp, runner=runner, storage=storage,
                                     progress=progress)  # fmt: skip
        return result


def check_guardrails(
    config: TuneConfig,
    hp: HParams,
    data: PreparedData,
    progress: ProgressCallback | None = None,
) -> list[Finding]:
    """Check the "never do" list; report each finding; refuse errors (strict) before storage."""
    from hptune import guardrails

    findings = guardrails.check(config, hp, data)
    if progress is not None:
        for finding in findings:
            progress({"event": "guardrail", "finding": finding})
    guardrails.enforce(findings)
    return findings


def run_phase(
    config: TuneConfig,
    name: str,
    base: HParams,
    *,
    runner: Runner | None = None,
    storage: optuna.storages.BaseStorage | None = None,
    progress: ProgressCallback | None = None,
) -> PhaseResult:
    """Run one phase from the configuration ``base`` (or reuse its stored decision)."""
    from hptune.train import Runner

    runner = runner or Runner(config)
    storage = storage or open_storage(config)
    incoming = (
        incoming_diagnoses(config, storage, base) if name in ("epochs", "regularization") else []
    )
    phase = make_phase(name, config, runner, base, incoming=incoming)
    phase_result = _run_phase(config, storage, phase, base, runner, progress)
    if progress is not None:
        progress({"event": "phase_done", "phase": phase.name, "result": phase_result})
    return phase_result


def _run_phase(
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    phase: Phase,
    base: HParams,
    runner: Runner,
    progress: ProgressCallback | None,
) -> PhaseResult:
    import optuna

    from hptune.objective import SeedObjective

    study_name = config.study_name(phase.name)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction=config.objective.direction,
        sampler=phase.create_sampler(),
        pruner=phase.create_pruner(),
        load_if_exists=True,
    )
    _check_same_setup(study, phase, base, config, runner)
    if DECISION_ATTR in study.user_attrs:
        decision = Decision.from_json(study.user_attrs[DECISION_ATTR])
        return PhaseResult(phase.name, study_name, decision, _outcomes(study), reused=True)
    if progress is not None:
        progress({"event": "phase_start", "phase": phase.name, "n_trials": phase.n_trials(),
                  "seed_epochs": phase.n_remaining(study.get_trials(deepcopy=False))
                  * len(config.objective.seed_list) * phase.max_epochs(base)})  # fmt: skip
    objective = SeedObjective(
        runner, phase, base, progress=progress, reuse=_reuse_lookup(config, storage)
    )
    return work_through_queue(config, storage, study, phase, base, objective, progress)


def work_through_queue(
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    phase: Phase,
    base: HParams,
    objective: Callable[[optuna.Trial], float],
    progress: ProgressCallback | None = None,
) -> PhaseResult:
    """Run ``phase``'s trials with ``objective`` until it is decided, as one of any number
    of workers on ``storage``; every worker returns the same decision.

    Every change to the queue happens under the study's lock, so workers never queue or
    claim a trial twice; training happens outside it. A trial claimed here ends COMPLETE,
    PRUNED or FAIL (also on Ctrl-C); a killed worker's trial goes stale and is failed by
    whoever looks next, then queued again. The decision is taken once, under the lock, when
    nothing is queued or running; workers still waiting read it from the storage.
    """
    import optuna
    from optuna.trial import TrialState

    grace = 2 * config.heartbeat_seconds
    while True:
        raise_if_interrupted()  # between trials: nothing is running, nothing to mark
        with queue_lock(config, storage, study.study_name):
            if DECISION_ATTR in study.user_attrs:  # another worker decided
                decision = Decision.from_json(study.user_attrs[DECISION_ATTR])
                return PhaseResult(phase.name, study.study_name, decision, _outcomes(study),
                                   reused=False)  # fmt: skip
            # One read of the trials, again only after a change: the lock is held briefly.
            trials = study.get_trials(deepcopy=False)
            if fail_stale_trials(study, storage, grace, trials):
                trials = study.get_trials(deepcopy=False)
            if _fill_queue(study, phase, base, config, trials):
                trials = study.get_trials(deepcopy=False)
            claimed = claim_waiting_trial(study, storage, trials)
            if claimed is not None:
                trial = optuna.Trial(study, claimed)
                phase.suggest(trial, base)  # sampled under the lock: no two workers alike
            elif not any(t.state == TrialState.RUNNING for t in trials):
                return _decide(study, phase, base, config)
        if claimed is not None:
            _run_claimed(study, storage, trial, objective, config.heartbeat_seconds)
        else:
            _wait_for_running(study, config.heartbeat_seconds, progress)


def _decide(study: optuna.Study, phase: Phase, base: HParams, config: TuneConfig) -> PhaseResult:
    outcomes = _outcomes(study)
    decision = _with_remedy(phase.decide(outcomes, base, config.objective.direction), study)
    if phase.notes:
        decision = dataclasses.replace(
            decision, reason=f"{decision.reason}; {'; '.join(phase.notes)}"
        )
    study.set_user_attr(DECISION_ATTR, decision.to_json())
    _save_dashboard_note(study, decision, outcomes, config.objective.metric)
    _remove_unfinished_checkpoints(study, config)
    return PhaseResult(phase.name, study.study_name, decision, outcomes, reused=False)


def _remove_unfinished_checkpoints(study: optuna.Study, config: TuneConfig) -> None:
    """Once a phase is decided, a failed or interrupted trial's checkpoints (kept so far in
    case it ran again) are never needed: remove them, so disk holds only finished trials'
    best and last epochs."""
    from pathlib import Path

    from hptune.train.checkpoints import remove_checkpoints

    root = Path(config.output_dir) / "checkpoints" / study.study_name
    for trial in study.get_trials(deepcopy=False):
        if trial.state.name != "COMPLETE":
            remove_checkpoints(root / f"trial-{trial.number}")


def _fill_queue(
    study: optuna.Study,
    phase: Phase,
    base: HParams,
    config: TuneConfig,
    trials: list[optuna.trial.FrozenTrial],
) -> bool:
    """Queue what the phase still needs: retries of failed trials, divergence remedies, and
    its next trials (fixed points such as grid values first, then open slots its sampler fills
    when a worker claims them), so that queued plus running trials equal what remains.
    Whether anything was queued."""
    retries = phase.to_retry(trials)
    for failed in retries:
        _requeue(study, failed)
    remedies = 0
    if config.diagnostics.retry_diverged and phase.name != "learning_rate":
        remedies = _queue_remedies(study, trials)
    queued = bool(retries) or remedies > 0
    if queued:
        trials = study.get_trials(deepcopy=False)
    pending = sum(
        1
        for t in trials
        if t.state.name in ("WAITING", "RUNNING") and REMEDY_ATTR not in t.user_attrs
    )
    missing = phase.n_remaining(trials) - pending
    if missing <= 0:
        return queued
    present = {json.dumps(t.params, sort_keys=True) for t in trials}
    fixed = [p for p in phase.initial_params(base) if json.dumps(p, sort_keys=True) not in present]
    for params in (fixed + [{}] * missing)[:missing]:
        study.enqueue_trial(params)
    return True


def _run_claimed(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], float],
    heartbeat_seconds: int,
) -> None:
    """Train a claimed trial with a heartbeat; it ends COMPLETE, PRUNED or FAIL."""
    import optuna
    from optuna.trial import TrialState

    from hptune.objective import TrialOutOfMemory

    state, value, lost = TrialState.FAIL, None, False
    try:
        with Heartbeat(storage, trial._trial_id, heartbeat_seconds):
            try:
                value = objective(trial)
                state = TrialState.COMPLETE
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except TrialOutOfMemory:
                state = TrialState.FAIL  # recorded on the trial; bounds later batch proposals
            except optuna.exceptions.UpdateFinishedTrialError:
                lost = True  # failed as stale by another worker while we wrote to it
            except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: ends FAIL, runs again
                if not storage.get_trial(trial._trial_id).state.is_finished():
                    trial.set_user_attr("status", "interrupted")
                    trial.set_user_attr("interrupted_by", getattr(exc, "signal_name", "SIGINT"))
                raise
    finally:  # also on Ctrl-C or an error: never left RUNNING by this process
        lost = lost or storage.get_trial(trial._trial_id).state.is_finished()
        if not lost:
            study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    if lost:
        warnings.warn(
            f"trial {trial.number} of {study.study_name} was failed by another worker (its "
            "heartbeat looked stale); its result is dropped and it runs again. On a loaded "
            "machine, raise heartbeat_seconds.",
            stacklevel=2,
        )


def _save_dashboard_note(
    study: optuna.Study, decision: Decision, outcomes: list[TrialOutcome], metric: str
) -> None:
    """The decision and its evidence as the study's optuna-dashboard note (Markdown)."""
    from optuna_dashboard import save_note

    from hptune._display import describe_decision, outcome_cells, outcome_columns

    columns = outcome_columns(metric)
    lines = [
        f"# {study.study_name}",
        "",
        f"**Decision {describe_decision(decision)}.**",
        "",
        decision.reason,
        "",
        "| " + " | ".join(columns) + " |",
        "|" + " --- |" * len(columns),
    ]
    for o in sorted(outcomes, key=lambda o: o.number):
        lines.append("| " + " | ".join(outcome_cells(o)) + " |")
    save_note(study, "\n".join(lines) + "\n")


def _reuse_lookup(config: TuneConfig, storage: optuna.storages.BaseStorage) -> ReuseLookup:
    """Find a finished trial of this run (any phase) with the same configuration and seeds."""
    import optuna

    seeds = {str(s) for s in config.objective.seed_list}

    def lookup(hp: HParams) -> tuple[str, list[dict[str, Any]]] | None:
        wanted = hp.to_dict()
        names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        for phase in PHASE_NAMES:
            name = config.study_name(phase)
            if name not in names:
                continue
            study = optuna.load_study(study_name=name, storage=storage)
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                attrs = t.user_attrs
                if (
                    attrs.get("hparams") == wanted
                    and attrs.get("status") == "ok"
                    and set(attrs.get("seed_values", {})) == seeds
                    and "runs" in attrs
                ):
                    return f"{name}#{t.number}", list(attrs["runs"])
        return None

    return lookup


#: The trial user attribute of a remedy trial: the hyperparameters it changes.
REMEDY_ATTR = "hptune.remedy"


def _queue_remedies(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> int:
    """Queue each diverged trial once more with the guide's remedy, tagged with its origin;
    how many were queued."""
    from hptune.diagnose import remedy_for

    queued = 0
    remedied = {t.user_attrs.get("hptune.remedy_of") for t in trials}
    for t in trials:
        attrs = t.user_attrs
        if (
            attrs.get("status") != "diverged"
            or REMEDY_ATTR in attrs  # a remedy that diverged too is not retried again
            or t.number in remedied
            or "hparams" not in attrs
        ):
            continue
        changes, text = remedy_for("diverged", HParams.from_dict(attrs["hparams"]))
        remedy = {key.split(".", 1)[1]: value for key, value in changes.items()}
        study.enqueue_trial(
            dict(t.params),
            user_attrs={
                REMEDY_ATTR: remedy,
                "hptune.remedy_of": t.number,
                "hptune.fixes": f"diverged: {text}",
            },
        )
        queued += 1
    return queued


def _with_remedy(decision: Decision, study: optuna.Study) -> Decision:
    """A decision for a configuration that only trained with a remedy carries the remedy."""
    for t in study.get_trials(deepcopy=False):
        remedy = t.user_attrs.get(REMEDY_ATTR)
        if (
            remedy
            and t.user_attrs.get("status") == "ok"
            and all(decision.params.get(k, v) == v for k, v in t.params.items())
        ):
            fixed = ", ".join(f"{k}={v:g}" for k, v in remedy.items())
            return dataclasses.replace(
                decision,
                params={**decision.params, **remedy},
                reason=f"{decision.reason}; trained only with the divergence remedy ({fixed})",
            )
    return decision


def _wait_for_running(
    study: optuna.Study, heartbeat_seconds: int, progress: ProgressCallback | None
) -> None:
    """Wait for trials running elsewhere (another worker, or a killed process's stale trial)."""
    if progress is not None:
        progress({"event": "waiting", "phase": study.study_name.rsplit(".", 1)[-1]})
    time.sleep(min(1.0, heartbeat_seconds))  # a read of the trials: cheap to poll


def _requeue(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """Queue a failed trial again with its parameters and its sampler state (e.g. grid id)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # system_attrs is marked experimental/deprecated
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=failed.params,
                distributions=failed.distributions,
                system_attrs={
                    **{k: v for k, v in failed.system_attrs.items() if k != HEARTBEAT_ATTR},
                    "hptune.retry_of": failed.number,
                },
            )
        )


def _outcomes(study: optuna.Study) -> list[TrialOutcome]:

    from hptune.objective import outcome_from_trial

    # Failed trials were retried before a decision; out-of-memory ones are kept as evidence.
    return [
        outcome_from_trial(t)
        for t in study.get_trials(deepcopy=False)
        if t.state.name in ("COMPLETE", "PRUNED") or t.user_attrs.get("status") == "oom"
    ]


def _check_same_setup(
    study: optuna.Study, phase: Phase, base: HParams, config: TuneConfig, runner: Runner
) -> None:
    """Record what the phase starts from; refuse to mix trials from another setup."""
    setup: dict[str, Any] = {
        "phase": phase.name,
        "base_hparams": base.to_dict(),
        "metric": config.objective.metric,
        "seeds": config.objective.seed_list,
        "model": config.model.path,
        "method": config.method.model_dump(),
        "fingerprints": runner.data.fingerprints,
    }
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1:  # the effective batch is per process: never mix with other launches
        setup["processes"] = processes
    stored = study.user_attrs.get("hptune.setup")
    if stored is None:
        study.set_user_attr("hptune.setup", setup)
        from hptune.train.environment import describe_environment
        from hptune.train.metrics import bleu_signature

        study.set_user_attr("hptune.bleu_signature", bleu_signature())
        study.set_user_attr("hptune.split_overlaps", runner.data.overlaps)
        study.set_user_attr("hptune.environment", describe_environment())
        return
    changed = sorted(k for k in setup if json.dumps(stored.get(k)) != json.dumps(setup[k]))
    if changed:
        raise ConfigError(
            f"study {study.study_name!r} in {config.storage_display!r} was run with another "
            f"{', '.join(changed)}; its trials cannot be mixed with this configuration's. "
            "Give the run a new name (the 'name' key) or a new storage."
        )
