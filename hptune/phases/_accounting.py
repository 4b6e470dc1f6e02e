"""Trial accounting: which of a study's trials are settled, which run again, what remains.

The worker queue keeps ``queued + running = what remains`` (``hptune.pipeline``); the
counting behind "what remains" lives here, in one place, for every phase. Trials are matched
by their parameters: a retry of a failed trial has the same parameters as the trial it
retries.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune.keys import TrialStatus
from hptune.stored import is_failed, is_pending, is_scored

if TYPE_CHECKING:
    import optuna

__all__ = ["grid_remaining", "n_settled", "params_key", "to_retry"]


def params_key(params: dict[str, Any]) -> str:
    """A trial's parameters as a comparable key."""
    return json.dumps(params, sort_keys=True)


def _is_done(trial: optuna.trial.FrozenTrial) -> bool:
    return is_scored(trial)


def _is_oom(trial: optuna.trial.FrozenTrial) -> bool:
    return is_failed(trial) and keys.is_oom(trial)


def _n_failures(trials: list[optuna.trial.FrozenTrial], key: str) -> int:
    """Failures of a parameter set that use up its retries (an interruption does not, nor a
    trial the compute budget kept from starting)."""
    return sum(
        1
        for t in trials
        if is_failed(t)
        and params_key(t.params) == key
        and keys.stored_status(t) not in (TrialStatus.INTERRUPTED, TrialStatus.OVER_BUDGET)
    )


def _settled_keys(trials: list[optuna.trial.FrozenTrial], max_retries: int) -> set[str]:
    """Parameter sets that will not run again: done, out of memory, or out of retries."""
    settled = {params_key(t.params) for t in trials if _is_done(t) or _is_oom(t)}
    for t in trials:
        if is_failed(t) and _n_failures(trials, params_key(t.params)) > max_retries:
            settled.add(params_key(t.params))
    return settled


def n_settled(trials: list[optuna.trial.FrozenTrial], max_retries: int) -> int:
    """Trials that count against the budget: done, out of memory, or failed for good."""
    exhausted = {
        params_key(t.params)
        for t in trials
        if is_failed(t)
        and not _is_oom(t)
        and _n_failures(trials, params_key(t.params)) > max_retries
        and not any(_is_done(o) and params_key(o.params) == params_key(t.params) for o in trials)
    }
    return sum(1 for t in trials if _is_done(t) or _is_oom(t)) + len(exhausted)


def to_retry(
    trials: list[optuna.trial.FrozenTrial], max_retries: int
) -> list[optuna.trial.FrozenTrial]:
    """Failed trials to queue again with the same parameters (each at most ``max_retries``).

    Not those out of memory (a retry would fail the same way), not a parameter set already
    done, queued or running, and one trial per parameter set.
    """
    settled = {params_key(t.params) for t in trials if _is_done(t)}
    planned = {params_key(t.params) for t in trials if is_pending(t)}
    retry: dict[str, optuna.trial.FrozenTrial] = {}
    for t in trials:
        key = params_key(t.params)
        if (
            is_failed(t)
            and not _is_oom(t)
            and key not in settled
            and key not in planned
            and _n_failures(trials, key) <= max_retries
        ):
            retry[key] = t
    return list(retry.values())


def grid_remaining(
    trials: list[optuna.trial.FrozenTrial],
    param: str | tuple[str, ...],
    grid: list[Any],
    max_retries: int,
) -> int:
    """Grid points of ``param`` that are neither done nor failed for good.

    Args:
        trials: The study's trials.
        param: The parameter the grid is of, or several (a grid of tuples of their values).
        grid: Its values (tuples, in ``param``'s order, for several).
        max_retries: How often a failed trial is queued again.

    Returns:
        How many grid points still have to run.
    """
    names = (param,) if isinstance(param, str) else param
    settled = _settled_keys(trials, max_retries)
    settled_values = {
        tuple(t.params[n] for n in names)
        for t in trials
        if params_key(t.params) in settled and all(n in t.params for n in names)
    }
    points = [(value,) if isinstance(param, str) else tuple(value) for value in grid]
    return sum(1 for point in points if point not in settled_values)
