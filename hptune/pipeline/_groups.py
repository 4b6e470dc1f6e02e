"""Candidates together (``training.candidates_together``): which queued trials join the trial a
worker just claimed, to train in one stack of adapters over one frozen base.

A group is the claimed trial and the queued trials right behind it, in the queue's order, as
long as each:

* had every parameter fixed when it was queued (a grid point, a local rate, a rate probe,
  racing's extra seeds): a trial its sampler fills when claimed (TPE) stays apart, since
  the sampler would propose it without the group's results;
* is no divergence remedy (its configuration changes when claimed);
* can share the first trial's stack (`hptune.train.together.kept_apart`: the same batch,
  accumulation, epochs and rank);
* fits, with every adapter before it, in the memory a step may use (``MemoryCheck.fits``
  with as many adapters as the group's seeds); on a CPU without a memory limit, any number.

Each trial of a group stays its own Optuna trial: claimed, heartbeated and told on its own.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from hptune import keys
from hptune._lazy import optuna
from hptune.config._together import groups_candidates
from hptune.hparams import HParams
from hptune.storage import Heartbeat, claim_waiting_trial
from hptune.stored import state_of, trial_id
from hptune.train.target import stack_check
from hptune.train.together import kept_apart, trains_together

if TYPE_CHECKING:
    from hptune.config import TuneConfig
    from hptune.objective import SeedObjective
    from hptune.phases import Phase
    from hptune.train import RunnerBase

__all__ = ["claim_group", "run_claimed_group"]

_FIXED = "fixed_params"  # where Optuna's enqueue_trial keeps a queued trial's parameters


def claim_group(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    phase: Phase,
    base: HParams,
    config: TuneConfig,
    runner: RunnerBase,
    first: optuna.Trial,
) -> list[optuna.Trial]:
    """The queued trials that train in one stack with ``first``, claimed (call under the
    study's queue lock, with ``first`` claimed and its parameters sampled).

    Args:
        study: The phase's study.
        storage: Its storage.
        phase: The phase (its parameters, from a queued trial's fixed ones).
        base: The configuration the phase starts from.
        config: The run's configuration (``training.candidates_together``).
        runner: The run's trainer (whether it stacks adapters; the memory model).
        first: The trial claimed first.

    Returns:
        The further trials claimed, in the queue's order, their parameters sampled; empty
        when the run keeps candidates apart or none can join.
    """
    seeds = config.objective.seed_list
    if not groups_candidates(config.method, config.training):
        return []
    if not trains_together(runner, seeds) or keys.REMEDY in first.user_attrs:
        return []
    hp = phase.suggest(first, base)
    check = stack_check(config, runner)
    adapters = len(first.user_attrs.get(keys.RACE_SEEDS) or seeds)
    group: list[optuna.Trial] = []
    while (queued := _next_queued(study)) is not None:
        joins = _joins(phase, base, hp, queued)
        n = len(queued.user_attrs.get(keys.RACE_SEEDS) or seeds)
        if not joins or (check is not None and not check.fits(hp.batch_size, adapters + n)):
            break
        trial = claim_waiting_trial(study, storage)
        if trial is None:
            break
        phase.suggest(trial, base)
        group.append(trial)
        adapters += n
    return group


def _next_queued(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The trial ``study.ask()`` claims next: the oldest waiting one."""
    waiting = [t for t in study.get_trials(deepcopy=False) if state_of(t) == "waiting"]
    return min(waiting, key=lambda t: t.number) if waiting else None


def _joins(phase: Phase, base: HParams, hp: HParams, queued: optuna.trial.FrozenTrial) -> bool:
    """Whether ``queued`` can join a stack of ``hp``: every parameter fixed, no remedy, and
    nothing that keeps it apart."""
    fixed = queued.system_attrs.get(_FIXED)
    if not isinstance(fixed, dict) or keys.REMEDY in queued.user_attrs:
        return False
    try:
        peek = optuna.trial.FixedTrial(fixed, number=queued.number)
        own = phase.suggest(peek, base)  # type: ignore[arg-type]  # a Trial's suggest_* API
    except (ValueError, KeyError, NotImplementedError):  # a parameter its sampler would fill
        return False
    return kept_apart(hp, own) is None


def run_claimed_group(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    trials: list[optuna.Trial],
    objective: SeedObjective,
    heartbeat_seconds: int,
    beat_storage: optuna.storages.BaseStorage | None = None,
) -> None:
    """Train claimed trials in one stack, each with its heartbeat; each ends COMPLETE,
    PRUNED or FAIL on its own (as `run_claimed` ends one trial; a Ctrl-C or SIGTERM marks
    every trial still running interrupted, and is raised again).

    Args:
        study: The phase's study.
        storage: The storage ``study`` lives in.
        trials: The claimed trials, their parameters sampled.
        objective: Trains them (`SeedObjective.train_trials`).
        heartbeat_seconds: How often each trial's heartbeat is written.
        beat_storage: The storage the heartbeats write through (default: ``storage``).
    """
    outcomes: list[float | Exception] = []
    try:
        with ExitStack() as beats:
            for trial in trials:
                beats.enter_context(
                    Heartbeat(beat_storage or storage, trial_id(trial), heartbeat_seconds)
                )
            try:
                outcomes = objective.train_trials(trials)
            except KeyboardInterrupt as exc:
                for trial in trials:
                    if not storage.get_trial(trial_id(trial)).state.is_finished():
                        keys.set_status(trial, keys.TrialStatus.INTERRUPTED)
                        signal = getattr(exc, "signal_name", "SIGINT")
                        trial.set_user_attr(keys.INTERRUPTED_BY, signal)
                raise
    finally:  # also on Ctrl-C or an error: none left RUNNING by this process
        for index, trial in enumerate(trials):
            if storage.get_trial(trial_id(trial)).state.is_finished():
                continue  # failed as stale by another worker meanwhile
            outcome = outcomes[index] if index < len(outcomes) else None
            if isinstance(outcome, float):
                study.tell(trial, outcome, state=optuna.trial.TrialState.COMPLETE)
            elif isinstance(outcome, optuna.TrialPruned):
                study.tell(trial, None, state=optuna.trial.TrialState.PRUNED)
            else:  # out of memory (recorded on the trial), or an error
                study.tell(trial, None, state=optuna.trial.TrialState.FAIL)
