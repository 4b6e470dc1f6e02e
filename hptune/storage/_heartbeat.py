"""Heartbeats: a running trial's thread refreshes one; a watch on the local clock finds the dead.

As Optuna's ``storages/_heartbeat.py``, but judged on whether the beat changed, never on the
time it holds, so no two hosts' clocks are compared.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from hptune import keys
from hptune._lazy import optuna
from hptune.stored import is_running, trial_id

_log = logging.getLogger("hptune.storage")

#: The trial system attribute a running trial's heartbeat thread refreshes: ``[beat, unix
#: time]``, a new beat number each time (only whether it changed is judged, never the time).
HEARTBEAT_ATTR = keys.HEARTBEAT


class StaleWatch:
    """Which running trials' heartbeats have stopped, timed on this process's own clock.

    A trial is stale when its heartbeat value has not changed for ``grace_seconds`` of
    ``clock`` (``time.monotonic`` by default) since this watch first saw that value. What the
    heartbeat holds is never compared with this machine's time, so a worker whose clock runs
    minutes ahead or behind is judged like any other (Optuna's own heartbeat compares the
    writer's and the checker's clocks through the database). A watch starting late (a new
    ``hptune run`` after a crash) waits one grace period from its first look.

    Args:
        grace_seconds: How long a heartbeat may stay unchanged.
        clock: Seconds on a clock that only moves forward.
    """

    def __init__(self, grace_seconds: float, clock: Any = time.monotonic) -> None:
        self.grace_seconds = grace_seconds
        self.clock = clock
        self._seen: dict[int, tuple[str, float]] = {}  # trial id -> (heartbeat, first seen)

    def is_stale(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether ``trial``'s heartbeat has stood still for the grace period.

        Args:
            trial: A running trial, as just read from the storage.

        Returns:
            True once its heartbeat has not changed for ``grace_seconds`` of this watch.
        """
        beat = repr(trial.system_attrs.get(HEARTBEAT_ATTR))
        now = self.clock()
        seen = self._seen.get(trial_id(trial))
        if seen is None or seen[0] != beat:
            self._seen[trial_id(trial)] = (beat, now)
            return False
        return now - seen[1] > self.grace_seconds


def fail_dead_trials(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    watch: StaleWatch,
    trials: list[optuna.trial.FrozenTrial] | None = None,
) -> list[int]:
    """Fail the running trials whose heartbeat ``watch`` finds stale; their numbers.

    Args:
        study: The phase's study.
        storage: Its storage.
        watch: The heartbeats seen so far, on this process's clock (keep one per phase).
        trials: The study's trials as just read; read now when None.

    Returns:
        The numbers of the trials failed, each then added to the study's
        ``hptune.stale_trials`` (call under the queue lock: one worker writes it at a time).
    """
    failed: list[int] = []
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in [t for t in trials if is_running(t)]:
        if not watch.is_stale(trial):
            continue
        try:
            if storage.set_trial_state_values(trial_id(trial), optuna.trial.TrialState.FAIL):
                failed.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished meanwhile, or failed by another worker
    if failed:  # written after the state: a trial that finished meanwhile is never listed
        stale = list(study.user_attrs.get(keys.STALE_TRIALS, []))
        study.set_user_attr(keys.STALE_TRIALS, stale + failed)
    return failed


class Heartbeat:
    """While a trial runs, refresh its heartbeat every ``interval`` seconds (a thread)."""

    def __init__(
        self, storage: optuna.storages.BaseStorage, trial_id: int, interval: float
    ) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self.failed_writes = 0  # beats the storage refused (logged, retried at the next beat)
        self.longest_gap = 0.0  # seconds between two written beats (the first: since start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="hptune-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        beat, last = 0, time.monotonic()
        while not self._stop.wait(self.interval):
            beat += 1  # a new value each time, whatever this machine's clock says
            try:
                value = [beat, time.time()]
                self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT_ATTR, value)
                last = self._written(last)
            except optuna.exceptions.UpdateFinishedTrialError:
                return  # failed as stale by another worker: nothing left to keep alive
            except Exception as exc:  # a passing database error: the next beat tries again
                self.failed_writes += 1
                _log.warning(
                    "heartbeat of trial %s not written (%s: %s); %d beat(s) failed so far, the "
                    "next one tries again. Other workers fail a trial whose heartbeat stands "
                    "still for stale_seconds",
                    self.trial_id,
                    type(exc).__name__,
                    exc,
                    self.failed_writes,
                )
                continue

    def _written(self, last: float) -> float:
        """Note how long after the last one this beat was written; warn when late."""
        now = time.monotonic()
        gap, self.longest_gap = now - last, max(self.longest_gap, now - last)
        if gap > 2 * self.interval:  # the process or its storage held the beat back
            _log.warning(
                "heartbeat of trial %s written %.1f s after the previous one (every %g s): "
                "this process or its storage was held up; other workers wait stale_seconds",
                self.trial_id,
                gap,
                self.interval,
            )
        return now
