"""Claiming a queued trial: Optuna's ``Study.ask()``, made under the queue lock."""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING

from hptune import keys
from hptune.storage._heartbeat import HEARTBEAT_ATTR
from hptune.stored import state_of, trial_id

if TYPE_CHECKING:
    import optuna


def worker_id() -> str:
    """Who runs a trial (its ``worker`` user attribute): host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_waiting_trial(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    trials: list[optuna.trial.FrozenTrial] | None = None,
) -> optuna.Trial | None:
    """Claim the oldest queued trial through ``study.ask()``; None if none is queued.

    Optuna's ``ask`` moves the oldest WAITING trial to RUNNING with a compare-and-set in the
    storage; with none waiting it would create a new, empty trial, so it is called only
    when one is queued. The claimed trial then gets its first heartbeat and its worker
    (``keys.WORKER``).
    Call it under `queue_lock`: the state change is a compare-and-set on PostgreSQL and a
    journal, but SQLite has no row locks and could hand one trial to two callers, and only
    the lock keeps the queue from emptying between the look and the claim.

    Args:
        study: The phase's study.
        storage: Its storage.
        trials: The study's trials as just read under the lock; read now when None.

    Returns:
        The claimed trial, RUNNING, its parameters not yet sampled; None when none waits.
    """
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    if not any(state_of(t) == "waiting" for t in trials):
        return None
    trial = study.ask()
    storage.set_trial_system_attr(trial_id(trial), HEARTBEAT_ATTR, [0, time.time()])
    trial.set_user_attr(keys.WORKER, worker_id())  # through the trial: its cached copy too
    return trial
