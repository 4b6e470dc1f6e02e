"""Rate probes: a configuration's other learning rates, queued once the phase's trials are done.

A phase whose candidate changes what the rate was tuned under (the batch phase's larger
effective batch) names that candidate's other rates of the local set (``Phase.rate_probes``).
They are queued together, before racing, marked ``keys.RATE_PROBE`` (a probe that diverges is
not remedied). Without a compute budget every one is queued; under one, those that fit the
room racing would have (the budget less what was trained and the later phases' plan), in the
phase's order, so a probe never takes what a later phase needs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from hptune import keys
from hptune.pipeline._racing import later_reserve
from hptune.record import finished_outcomes

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.hparams import HParams
    from hptune.ledger import BudgetLedger
    from hptune.phases import Phase

__all__ = ["queue_rate_probes"]


def queue_rate_probes(
    study: optuna.Study,
    phase: Phase,
    config: TuneConfig,
    trials: list[optuna.trial.FrozenTrial],
    ledger: BudgetLedger | None,
    base: HParams,
) -> int:
    """Queue the phase's rate probes not tried yet (under a budget: those its room pays for).

    Call it under the study's queue lock, with nothing queued or running.

    Args:
        study: The phase's study.
        phase: The phase (its ``rate_probes``).
        config: The run's configuration (its seeds: a probe trains every one).
        trials: The study's trials, as read under the lock.
        ledger: The run's budget; None: no budget.
        base: The configuration the phase starts from (a probe trains its epoch count).

    Returns:
        How many were queued.
    """
    tried = {json.dumps(t.params, sort_keys=True) for t in trials}
    probes = [
        p
        for p in phase.rate_probes(finished_outcomes(trials))
        if json.dumps(p, sort_keys=True) not in tried
    ]
    cost = len(config.objective.seed_list) * phase.max_epochs(base)
    left = None
    if ledger is not None:
        left = ledger.left(later=later_reserve(ledger, config, phase.name, base))
        probes = probes[: max(int(left // cost), 0)]
    for params in probes:
        why = "the learning rate re-tuned for this configuration (a probe: no remedy)"
        if left is not None:
            why += f"; the budget had {left:g} seed-epochs to spare, each probe costs {cost}"
        study.enqueue_trial(params, user_attrs={keys.RATE_PROBE: why}, skip_if_exists=False)
    return len(probes)
