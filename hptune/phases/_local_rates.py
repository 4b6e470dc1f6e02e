"""The learning rate as a nuisance hyperparameter: a candidate compared at its own best rate.

Google's Deep Learning Tuning Playbook: a hyperparameter that interacts with the learning
rate (the schedule, warmup and weight decay; a larger effective batch; the LoRA rank and
alpha) is compared with the rate re-tuned for each of its values, not at the rate tuned
under another. hptune re-tunes it in a local set around the incoming rate (by default x0.5,
x1, x2): wide enough to catch the usual shift (a constant rate wants about half a linear
decay's; a batch twice as large, up to twice the rate), narrow enough to stay a few trials.
A rate of that set is a probe: one that diverges ends its trial as diverged, with no remedy
and no retry, and the set is never pushed past its edges.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hptune.hparams import HParams
    from hptune.phases._outcome import TrialOutcome
    from hptune.phases._ranking import NoiseRanking

__all__ = [
    "RATE_FACTORS",
    "factor_words",
    "ordered_factors",
    "rate_points",
    "rates_won",
]

#: The learning rates a candidate is tried at, as factors of the incoming one.
RATE_FACTORS = (0.5, 1.0, 2.0)


def ordered_factors(factors: Sequence[float]) -> list[float]:
    """The order a candidate's rates are tried in: the incoming rate, then the others from
    the lowest (the safer probe first).

    Args:
        factors: The local set.

    Returns:
        ``1.0`` first, then the other factors ascending.
    """
    return [1.0, *sorted(f for f in factors if f != 1.0)]


def rate_points(
    candidates: list[dict[str, Any]], rate: float, factors: Sequence[float], *, reference: bool
) -> list[dict[str, Any]]:
    """Every candidate at every rate: each candidate's trials in turn, at the incoming rate
    first, then the other factors in ascending order. With ``reference`` the first candidate
    is the incoming configuration: its trial at the incoming rate comes first (the paired
    reference) and its other rates last, as an earlier phase tuned the rate under it
    already; a changed candidate is the one that needs its rate re-tuned.

    Args:
        candidates: The candidates, in order.
        rate: The incoming learning rate.
        factors: The factors of ``rate`` tried.
        reference: Whether the first candidate is the incoming configuration.

    Returns:
        One parameter dict per trial, ``learning_rate`` among them.
    """
    ordered = ordered_factors(factors)
    points = [
        {**candidate, "learning_rate": rate * factor}
        for candidate, factor in itertools.product(candidates, ordered)
    ]
    if reference and candidates:
        own = len(ordered)
        points = points[:1] + points[own:] + points[1:own]
    return points


def factor_words(rate: float, incoming: float) -> str:
    """A rate in words against the incoming one: ``rate 0.005 (x0.5)``.

    Args:
        rate: A trial's learning rate.
        incoming: The rate the phase starts from.

    Returns:
        The words.
    """
    return f"rate {rate:.3g} (x{rate / incoming:.3g})"


def rates_won(
    ranking: NoiseRanking, name: Callable[[TrialOutcome], str], base: HParams
) -> list[dict[str, Any]]:
    """Each candidate's best rate (and count) among those it finished at, best candidate
    first: what decisions, the report and the export say a candidate won at.

    Args:
        ranking: The phase's ranking (trials with a ``learning_rate`` parameter).
        name: A trial's candidate in words (trials of one candidate share it).
        base: The configuration the phase starts from (its rate and epoch count).

    Returns:
        One row per candidate: ``candidate``, ``learning_rate``, ``factor``, ``epochs``,
        ``mean``.
    """
    best: dict[str, TrialOutcome] = {}
    for outcome in ranking.ranked:  # best first: a candidate's first trial is its best
        best.setdefault(name(outcome), outcome)
    return [
        {
            "candidate": key,
            "learning_rate": o.params.get("learning_rate", base.learning_rate),
            "factor": o.params.get("learning_rate", base.learning_rate) / base.learning_rate,
            "epochs": o.params.get("epochs", base.epochs),
            "mean": o.mean,
        }
        for key, o in best.items()
    ]
