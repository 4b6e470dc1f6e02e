"""The regularization phase's epochs: the counts a compute budget's spare room tries its
configurations at, and how a trial is described with its rate.

The epoch count was settled under the incoming schedule, but a schedule changes it: a
constant rate keeps improving where a linear decay has already annealed, so a candidate's
best count may differ from the incoming one. The phase's own trials all train at the incoming
count. When a budget has room once they and racing are done, the best configurations are
tried at the epochs phase's other counts (contenders first, the counts nearest the incoming
one first), each only while the room pays for it: no budget is spent past the plan for
nothing, and a user without a budget gets the phase as planned. Under a constant rate without
warmup a shorter count is read from the longer run (``hptune.record``), so it costs nothing.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hptune.phases._epochs import default_epoch_range
from hptune.phases._regularization_space import same_params
from hptune.seeds import Verdict

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.hparams import HParams
    from hptune.phases._outcome import TrialOutcome
    from hptune.phases._ranking import NoiseRanking

__all__ = ["at_incoming_count", "at_other_counts", "spare_counts"]


def spare_counts(config: TuneConfig, base: HParams, n_train: int) -> list[int]:
    """The epoch counts the phase's spare trials may use: the epochs phase's range (when it
    runs and ``phases.regularization.spare_epochs`` is on), without the incoming count.

    Args:
        config: The run's configuration.
        base: The configuration the phase starts from.
        n_train: Training examples (the presets' range, when none is configured).

    Returns:
        The counts, ascending; empty when none is tried.
    """
    if not config.phases.regularization.spare_epochs or "epochs" not in config.phases.run:
        return []
    low, high = config.phases.epochs.range or default_epoch_range(n_train)
    return [count for count in range(int(low), int(high) + 1) if count != base.epochs]


def at_other_counts(
    ranking: NoiseRanking,
    outcomes: list[TrialOutcome],
    counts: list[int],
    names: tuple[str, ...],
    incoming_epochs: int,
    reference: TrialOutcome | None = None,
) -> list[dict[str, Any]]:
    """The ranked configurations at the other epoch counts, not tried yet, in the order they
    are worth it: the best and its contenders (not worse beyond noise) before the rest, each
    in the ranking's order; a configuration's counts nearest the incoming one first (the
    longer of two as near).

    Args:
        ranking: The phase's ranking.
        outcomes: Every finished trial (what was tried).
        counts: The other counts (`spare_counts`).
        names: The candidates' parameters (without the rate and the count).
        incoming_epochs: The count the phase's own trials train.
        reference: The incoming configuration's trial at its own rate, if any: left out, as
            the epochs phase decided the count on it (its trials at the other counts).

    Returns:
        Each new trial's parameters (``names``, ``learning_rate``, ``epochs``).
    """
    keys = (*names, "learning_rate", "epochs")
    worse = set(n.number for n in ranking.having(Verdict.WORSE))
    ordered = [o for o in ranking.ranked if o.number not in worse]
    ordered += [o for o in ranking.ranked if o.number in worse]
    nearest = sorted(counts, key=lambda c: (abs(c - incoming_epochs), -c))
    known = [o for o in outcomes if all(k in o.params for k in keys[:-1])]
    tried = [{"epochs": incoming_epochs, **o.params} for o in known]
    points: list[dict[str, Any]] = []
    for outcome in ordered:
        if outcome is reference:  # the epochs phase's trials: it decided on them already
            continue
        for count in nearest:
            point = {**{k: outcome.params[k] for k in keys[:-1]}, "epochs": count}
            if not any(same_params(point, other, keys) for other in (*tried, *points)):
                points.append(point)
    return points


def at_incoming_count(
    trials: list[optuna.trial.FrozenTrial], incoming: HParams | None
) -> list[optuna.trial.FrozenTrial]:
    """The trials at the incoming count, a trial stored without one counted at it (a study
    the phase started before its trials carried the count)."""
    if incoming is None:
        return trials
    stored = [t if "epochs" in t.params else _with_count(t, incoming.epochs) for t in trials]
    return [t for t in stored if t.params["epochs"] == incoming.epochs]


def _with_count(trial: optuna.trial.FrozenTrial, count: int) -> optuna.trial.FrozenTrial:
    copied = copy.copy(trial)
    copied.params = {**trial.params, "epochs": count}
    return copied
