"""Claiming a queued trial: a compare-and-set in the storage, made under the queue lock."""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING

from hptune import keys
from hptune.storage._heartbeat import HEARTBEAT_ATTR
from hptune.stored import trial_id

if TYPE_CHECKING:
    import optuna


def worker_id() -> str:
    """Who runs a trial (its ``worker`` user attribute): host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_waiting_trial(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    trials: list[optuna.trial.FrozenTrial] | None = None,
) -> int | None:
    """Move the oldest queued trial to RUNNING; its id, or None if none is left.

    Call it under `queue_lock`: the state change is a compare-and-set on PostgreSQL,
    and a journal, but SQLite has no row locks and could hand one trial to two callers.
    """
    import optuna

    if trials is None:  # else: the study's trials as just read under the lock
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    for trial in sorted(waiting, key=lambda t: t.number):
        try:
            # False when another worker took it first (compare-and-set in the storage).
            if storage.set_trial_state_values(trial_id(trial), optuna.trial.TrialState.RUNNING):
                storage.set_trial_system_attr(trial_id(trial), HEARTBEAT_ATTR, [0, time.time()])
                storage.set_trial_user_attr(trial_id(trial), keys.WORKER, worker_id())
                return trial_id(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None
