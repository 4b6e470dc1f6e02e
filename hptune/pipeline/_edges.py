"""Edges explored: one more trial past the edge of a phase's values when its best lies there.

Once a phase's trials are done (before racing), its ranking is read; when the best is the
highest (or lowest) value tried, the phase proposes one value past it
(``Phase.edge_extension``: the learning-rate grid x2 or /2, the epochs range x1.5), up to
``extend_edges`` per phase. The new trial joins the phase's study like any other (the compute
budget may refuse it), racing then covers it, and the decision names the values tried past
the edge.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from hptune.keys import TrialStatus

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.phases import Phase

__all__ = ["queue_edge_extension"]


def queue_edge_extension(
    study: optuna.Study,
    phase: Phase,
    config: TuneConfig,
    trials: list[optuna.trial.FrozenTrial],
) -> int:
    """Queue one trial past the edge where the phase's best lies, if the phase proposes one.

    Call it under the study's queue lock, with nothing queued or running.

    Args:
        study: The phase's study.
        phase: The phase (its ``edge_extension`` and margin).
        config: The run's configuration (the objective's direction).
        trials: The study's trials, as read under the lock.

    Returns:
        How many trials were queued (0 or 1).
    """
    from hptune.phases import rank_within_noise
    from hptune.record import decision_outcomes, finished_outcomes

    if not phase.extend_edges:
        return 0
    ok = [o for o in decision_outcomes(trials) if o.status == TrialStatus.OK and o.seed_values]
    if not ok:  # one is enough: the lowest rate alone trained, every higher one diverged
        return 0
    ranking = rank_within_noise(ok, config.objective.goal, phase.margin)
    # Every value tried counts as an edge, failed ones too: no extension past a crash.
    params = phase.edge_extension(ranking, finished_outcomes(trials))
    if params is None:
        return 0
    tried = {json.dumps(t.params, sort_keys=True) for t in trials}
    if json.dumps(params, sort_keys=True) in tried:  # run (or refused by the budget) already
        return 0
    study.enqueue_trial(params)
    return 1
