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
from typing import TYPE_CHECKING, Any

from hptune.record import finished_outcomes

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hptune.phases import NoiseRanking, Phase

__all__ = ["edge_extension"]


def edge_extension(
    phase: Phase, ranking: NoiseRanking, trials: list[FrozenTrial]
) -> dict[str, Any] | None:
    """The parameters of one trial past the edge where the phase's best lies, if the phase
    proposes one its study has not tried yet.

    Args:
        phase: A phase that extends its edges (``phase.extend_edges``; its
            ``edge_extension``).
        ranking: Its trials that trained, ranked within seed noise.
        trials: The study's trials, with nothing queued or running.

    Returns:
        The new trial's parameters, or None.
    """
    # Every value tried counts as an edge, failed ones too: no extension past a crash.
    params = phase.edge_extension(ranking, finished_outcomes(trials))
    if params is None:
        return None
    tried = {json.dumps(t.params, sort_keys=True) for t in trials}
    if json.dumps(params, sort_keys=True) in tried:  # run (or refused by the budget) already
        return None
    return params
