"""Spare trials: what a compute budget has left goes to configurations not yet measured.

Racing spends the budget's room on the configurations still in question; once it queues
nothing more (every question settled, or ``objective.max_seeds`` reached), a phase may name
configurations worth measuring next (``Phase.spare_points``: the regularization phase's best
configurations at the epochs phase's other counts). The first its study has not tried and the
room pays for is queued, marked ``keys.SPARE``; racing then covers it like any other trial,
and the phase decides over all of them. The room is racing's (the budget less what was trained,
what runs, and the plan of the phases still to come, planned at the count the spare trial
would make the run's), so a spare trial never takes what a later phase needs, and a run
without a budget queues none.
"""

from __future__ import annotations

import functools
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
    from hptune.phases import NoiseRanking, Phase

__all__ = ["queue_spare"]


def queue_spare(
    study: optuna.Study,
    phase: Phase,
    config: TuneConfig,
    ranking: NoiseRanking,
    trials: list[optuna.trial.FrozenTrial],
    ledger: BudgetLedger,
    base: HParams,
) -> bool:
    """Queue the phase's first spare configuration not tried yet that the budget pays for.

    A configuration at ``c`` epochs costs its seeds' ``c`` epochs, and what the phases still
    to come would cost more if ``c`` became the run's count (the final evaluation trains at
    the chosen count): both must fit what the budget has left after the later phases' plan.
    Call it under the study's queue lock, with nothing queued or running.

    Args:
        study: The phase's study.
        phase: The phase (its ``spare_points``).
        config: The run's configuration (its seeds: a spare trial trains every one).
        ranking: The phase's trials that trained, ranked within seed noise.
        trials: The study's trials, as read under the lock.
        ledger: The run's budget.
        base: The configuration the later phases are planned from (at the longest count
            the phase tried).

    Returns:
        Whether a trial was queued.
    """
    reserve = functools.cache(
        lambda count: later_reserve(ledger, config, phase.name, base.replace(epochs=count))
    )
    left = ledger.left(later=reserve(base.epochs))
    tried = {json.dumps(t.params, sort_keys=True) for t in trials}
    seeds = len(config.objective.seed_list)
    for params in phase.spare_points(ranking, finished_outcomes(trials)):
        if json.dumps(params, sort_keys=True) in tried:
            continue
        count = int(params.get("epochs", base.epochs))
        more_later = max(reserve(max(count, base.epochs)) - reserve(base.epochs), 0)
        cost = seeds * count + more_later  # at most: a read-back trains nothing
        if cost <= left:
            why = f"the budget had {left:g} seed-epochs to spare; this costs {cost} at most"
            study.enqueue_trial(params, user_attrs={keys.SPARE: why}, skip_if_exists=False)
            return True
    return False
