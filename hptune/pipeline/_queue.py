"""The worker queue: any number of workers on one storage work through a phase's trials.

The invariant, kept under the study's lock: **queued + running = what remains** of the
phase (``Phase.n_remaining``, counted in ``hptune.phases._accounting``). Each pass of a
worker, under the lock: fail trials whose heartbeat went stale, top the queue up
(``fill_queue``), claim the oldest queued trial (Optuna's ``Study.ask``) and sample its
parameters; then, outside the lock, train it (``run_claimed``). With nothing queued or
running, the rates a configuration still needs may be queued (``queue_rate_probes``), else
a trial past the edge where the best lies (``edge_extension``), then racing may queue more
paired seeds for configurations not yet told apart (``queue_racing``; under a compute
budget, only those the budget can pay after the phases still to come: ``racing_room``),
then a configuration the budget's room pays for (``queue_spare``); once none queues
anything, the phase is decided, once, under the lock; every worker returns that decision.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable

from hptune import keys
from hptune._lazy import optuna
from hptune._signals import raise_if_interrupted
from hptune.config import TuneConfig
from hptune.exceptions import StaleResultDropped
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.ledger import BudgetLedger
from hptune.objective import ProgressCallback, SeedObjective, TrialOutOfMemory
from hptune.phases import Phase, rank_within_noise
from hptune.pipeline._decide import decide, stored_result
from hptune.pipeline._edges import edge_extension
from hptune.pipeline._groups import claim_group, run_claimed_group
from hptune.pipeline._probes import queue_rate_probes
from hptune.pipeline._racing import queue_racing, racing_room
from hptune.pipeline._remedies import queue_remedies
from hptune.pipeline._spare import queue_spare
from hptune.record import decision_outcomes
from hptune.results import PhaseResult
from hptune.storage import (
    Heartbeat,
    StaleWatch,
    claim_waiting_trial,
    fail_dead_trials,
    heartbeat_storage,
    queue_lock,
)
from hptune.stored import is_pending, is_running, trial_id

__all__ = ["fill_queue", "run_claimed", "work_through_queue"]


def work_through_queue(
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    phase: Phase,
    base: HParams,
    objective: Callable[[optuna.Trial], float],
    progress: ProgressCallback | None = None,
    *,
    ledger: BudgetLedger | None = None,
) -> PhaseResult:
    """Run ``phase``'s trials with ``objective`` until it is decided, as one of any number
    of workers on ``storage``; every worker returns the same decision.

    Every change to the queue happens under the study's lock, so workers never queue or
    claim a trial twice; training happens outside it (one trial, or several in one stack
    with ``training.candidates_together``). A trial claimed here ends COMPLETE,
    PRUNED or FAIL (also on Ctrl-C); a killed worker's trial goes stale and is failed by
    whoever looks next, then queued again. The decision is taken once, under the lock, when
    nothing is queued or running; workers still waiting read it from the storage.

    Args:
        config: The run's configuration (storage, heartbeat, diagnostics).
        storage: The storage ``study`` lives in.
        study: The phase's study.
        phase: The phase: its budget, parameters and decision rule.
        base: The configuration the phase starts from.
        objective: Trains a claimed trial and returns its value; may raise
            ``optuna.TrialPruned`` or ``hptune.objective.TrialOutOfMemory``.
        progress: Called with progress events (e.g. ``waiting``).
        ledger: The run's compute budget, which racing keeps to (default: the one
            ``objective`` keeps to, when it is a ``SeedObjective``; none otherwise).

    Returns:
        The phase's decision with the trials it was taken on.

    Raises:
        Interrupted: SIGINT or SIGTERM (during ``tune``): raised between trials, or from the
            trial in progress once it is marked interrupted.
    """
    watch = StaleWatch(config.stale_after)  # timed on this process's clock
    if ledger is None and isinstance(objective, SeedObjective):
        ledger = objective.budget
    while True:
        raise_if_interrupted()  # between trials: nothing is running, nothing to mark
        with queue_lock(config, storage, study.study_name):
            claimed = _next_step(config, storage, study, phase, base, watch, ledger)
            step = _with_group(claimed, config, storage, study, phase, base, objective)
        if isinstance(step, PhaseResult):
            return step
        beats = config.heartbeat_seconds, heartbeat_storage(config, storage)
        if isinstance(step, list):  # trials that train in one stack (candidates together)
            assert isinstance(objective, SeedObjective)
            run_claimed_group(study, storage, step, objective, *beats)
        elif step is not None:
            run_claimed(study, storage, step, objective, beats[0], beat_storage=beats[1])
        else:
            _wait_for_running(study, config.heartbeat_seconds, progress)


def _with_group(
    step: PhaseResult | optuna.Trial | None,
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    phase: Phase,
    base: HParams,
    objective: Callable[[optuna.Trial], float],
) -> PhaseResult | optuna.Trial | list[optuna.Trial] | None:
    """A claimed trial with the queued trials that train in one stack with it, when the run
    trains candidates together (``claim_group``); else the step as it is."""
    if not isinstance(step, optuna.Trial) or not isinstance(objective, SeedObjective):
        return step
    more = claim_group(study, storage, phase, base, config, objective.runner, step)
    return [step, *more] if more else step


def _next_step(
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    phase: Phase,
    base: HParams,
    watch: StaleWatch,
    ledger: BudgetLedger | None,
) -> PhaseResult | optuna.Trial | None:
    """One pass under the queue lock: the phase's decision once it has one; else the next
    trial claimed, its parameters sampled (under the lock: no two workers alike); else None
    while trials run elsewhere."""
    decided = stored_result(study, phase, reused=False)  # another worker decided
    if decided is not None:
        return decided
    # One read of the trials, again only after a change: the lock is held briefly.
    trials = study.get_trials(deepcopy=False)
    if fail_dead_trials(study, storage, watch, trials):
        trials = study.get_trials(deepcopy=False)
    if fill_queue(study, phase, base, config, trials):
        trials = study.get_trials(deepcopy=False)
    trial = claim_waiting_trial(study, storage, trials)
    if trial is None and not any(is_running(t) for t in trials):
        if not _queue_more_evidence(study, phase, base, config, trials, ledger):
            return decide(study, phase, base, config)
        trial = claim_waiting_trial(study, storage)
    if trial is not None:
        phase.suggest(trial, base)
    return trial


def _queue_more_evidence(
    study: optuna.Study,
    phase: Phase,
    base: HParams,
    config: TuneConfig,
    trials: list[optuna.trial.FrozenTrial],
    ledger: BudgetLedger | None,
) -> bool:
    """With every trial done: one trial past the edge where the best lies, else the rates
    a configuration still needs (``queue_rate_probes``), else more paired seeds for the
    undecided (racing, within what ``ledger`` has left after the phases still to come), else
    a configuration the budget's spare room pays for (``queue_spare``); whether anything was
    queued (if not, decide)."""
    if queue_rate_probes(study, phase, config, trials, ledger, base) > 0:
        return True
    ok = [o for o in decision_outcomes(trials) if o.status == TrialStatus.OK and o.seed_values]
    extends = bool(phase.extend_edges) and len(ok) >= 1  # one: the lowest rate alone trained
    races = bool(config.objective.racing_seeds) and len(ok) >= 2
    spares = ledger is not None and len(ok) >= 2
    if not (extends or races or spares):
        return False
    ranking = rank_within_noise(ok, config.objective.goal, phase.margin)
    if extends and (params := edge_extension(phase, ranking, trials)) is not None:
        study.enqueue_trial(params)
        return True
    # the later phases planned at the longest count tried (a spare trial may win with it)
    counts = [t.params["epochs"] for t in trials if isinstance(t.params.get("epochs"), int)]
    longest = base.replace(epochs=max([base.epochs, *counts]))
    room = None
    if ledger is not None:
        room = racing_room(ledger, config, phase.name, longest, phase.max_epochs(base))
    if races and queue_racing(study, config, ranking, trials, room=room) > 0:
        return True
    return ledger is not None and queue_spare(
        study, phase, config, ranking, trials, ledger, longest
    )


def fill_queue(
    study: optuna.Study,
    phase: Phase,
    base: HParams,
    config: TuneConfig,
    trials: list[optuna.trial.FrozenTrial],
) -> bool:
    """Queue what the phase still needs, so that queued plus running trials equal what
    remains: retries of failed trials, divergence remedies (extra, outside the budget), and
    its next trials (fixed points such as grid values first, then open slots its sampler
    fills when a worker claims them).

    Args:
        study: The phase's study (call under its queue lock).
        phase: The phase: its budget, retries and fixed points.
        base: The configuration the phase starts from.
        config: The run's configuration (``diagnostics.retry_diverged``).
        trials: The study's trials, as read under the lock.

    Returns:
        Whether anything was queued.
    """
    retries = phase.to_retry(trials)
    for failed in retries:
        _requeue(study, failed)
    remedies = 0
    if config.diagnostics.retry_diverged and phase.remedies_divergence:
        remedies = queue_remedies(study, trials)
    queued = bool(retries) or remedies > 0
    if queued:
        trials = study.get_trials(deepcopy=False)
    pending = sum(1 for t in trials if is_pending(t) and keys.REMEDY not in t.user_attrs)
    missing = phase.n_remaining(trials) - pending
    if missing <= 0:
        return queued
    present = {json.dumps(t.params, sort_keys=True) for t in trials}
    fixed = [p for p in phase.initial_params(base) if json.dumps(p, sort_keys=True) not in present]
    for params in (fixed + [{}] * missing)[:missing]:
        study.enqueue_trial(params)
    return True


def run_claimed(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], float],
    heartbeat_seconds: int,
    *,
    beat_storage: optuna.storages.BaseStorage | None = None,
) -> None:
    """Train a claimed trial with a heartbeat; it ends COMPLETE, PRUNED or FAIL.

    A Ctrl-C or SIGTERM marks it interrupted (it runs again without using up a retry) and
    is raised again; a trial another worker failed as stale meanwhile is left as it is.

    Args:
        study: The phase's study.
        storage: The storage ``study`` lives in.
        trial: The claimed trial, its parameters sampled.
        objective: Trains the trial and returns its value.
        heartbeat_seconds: How often the trial's heartbeat is written.
        beat_storage: The storage the heartbeat writes through (default: ``storage``; see
            ``hptune.storage.heartbeat_storage``).

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM (``Interrupted``), once the trial is marked.
        Exception: Any other error of ``objective``, once the trial is told FAIL.

    Warns:
        StaleResultDropped: Another worker failed the trial as stale; its result is dropped.
    """
    state, value, lost = optuna.trial.TrialState.FAIL, None, False
    try:
        with Heartbeat(beat_storage or storage, trial_id(trial), heartbeat_seconds):
            try:
                state, value = _train(storage, trial, objective)
            except optuna.exceptions.UpdateFinishedTrialError:
                lost = True  # failed as stale by another worker while we wrote to it
    finally:  # also on Ctrl-C or an error: never left RUNNING by this process
        lost = lost or storage.get_trial(trial_id(trial)).state.is_finished()
        if not lost:
            study.tell(trial, value, state=state)
    if lost:
        warnings.warn(
            f"trial {trial.number} of {study.study_name} was failed by another worker (its "
            "heartbeat looked stale); its result is dropped and it runs again. On a loaded "
            "machine, raise stale_seconds.",
            StaleResultDropped,
            stacklevel=2,
        )


def _train(
    storage: optuna.storages.BaseStorage,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], float],
) -> tuple[optuna.trial.TrialState, float | None]:
    """Train the trial: the state to tell and its value (a value only when COMPLETE).

    A Ctrl-C or SIGTERM marks a trial still running interrupted, then is raised again.
    """
    try:
        return optuna.trial.TrialState.COMPLETE, objective(trial)
    except optuna.TrialPruned:
        return optuna.trial.TrialState.PRUNED, None
    except TrialOutOfMemory:  # recorded on the trial; bounds later batch proposals
        return optuna.trial.TrialState.FAIL, None
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: ends FAIL, runs again
        if not storage.get_trial(trial_id(trial)).state.is_finished():
            keys.set_status(trial, keys.TrialStatus.INTERRUPTED)
            trial.set_user_attr(keys.INTERRUPTED_BY, getattr(exc, "signal_name", "SIGINT"))
        raise


def _wait_for_running(
    study: optuna.Study, heartbeat_seconds: int, progress: ProgressCallback | None
) -> None:
    """Wait for trials running elsewhere (another worker, or a killed process's stale trial)."""
    if progress is not None:
        progress({"event": "waiting", "phase": study.study_name.rsplit(".", 1)[-1]})
    time.sleep(min(1.0, heartbeat_seconds))  # a read of the trials: cheap to poll


def _requeue(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """Queue a failed trial again with its parameters, its sampler state (e.g. grid id) and
    what it was queued as (``keys.QUEUED_AS``)."""
    # The sampler's state (e.g. a grid id) lives in the system attributes. Neither call warns
    # (create_trial's system_attrs argument is not deprecated, add_trial is no longer
    # experimental), so no warning is filtered here.
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            system_attrs={
                **{k: v for k, v in failed.system_attrs.items() if k != keys.HEARTBEAT},
                keys.RETRY_OF: failed.number,
            },
            user_attrs={k: failed.user_attrs[k] for k in keys.QUEUED_AS if k in failed.user_attrs},
        )
    )
