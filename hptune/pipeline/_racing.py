"""Racing: more paired seeds for the configurations a phase cannot tell apart yet.

Once a phase's trials are done, its best configuration and each contender are either
separated beyond seed noise, shown equivalent, or undecided (``hptune.seeds.Verdict``).
Every undecided contender, and the best, trains on one more seed, the same seed for all
(paired), until every question is settled or each has ``objective.max_seeds`` seeds; a
"worse" label is revised when the next seeds say otherwise (the phase ranks again on every
seed). A racing trial has the parameters of
the trial it races for and adds its seeds to that trial's evidence
(``hptune.record.decision_outcomes``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hptune import keys
from hptune.stored import is_failed, is_scored

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.phases import NoiseRanking, TrialOutcome

__all__ = ["queue_racing"]


def queue_racing(
    study: optuna.Study,
    config: TuneConfig,
    ranking: NoiseRanking,
    trials: list[optuna.trial.FrozenTrial],
) -> int:
    """Queue one more paired seed for the best configuration and its undecided contenders.

    Call it under the study's queue lock, with nothing queued or running.

    Args:
        study: The phase's study.
        config: The run's configuration (racing seeds, retries).
        ranking: The phase's trials that trained, at least two, ranked within seed noise.
        trials: The study's trials, as read under the lock.

    Returns:
        How many racing trials were queued (0: the phase may decide).
    """
    extra = config.objective.racing_seeds
    if not extra or ranking.n_seeds < 2:
        return 0
    contenders = sorted(ranking.undecided, key=lambda o: abs(ranking.comparisons[o.number].mean))
    plans = [
        (o, seed)
        for o in contenders
        if (seed := _next_seed(o, extra, trials, config.max_retries)) is not None
    ]
    if not plans:
        return 0
    for seed in sorted({seed for _, seed in plans} - set(ranking.best.seed_values)):
        if (
            not _raced(ranking.best, seed, trials)
            and _failures(ranking.best, seed, trials) <= config.max_retries
        ):
            plans.append((ranking.best, seed))  # the best on the same seed: a paired comparison
    for outcome, seed in plans:
        study.enqueue_trial(
            outcome.params,
            user_attrs={keys.RACE_OF: outcome.number, keys.RACE_SEEDS: [seed]},
            skip_if_exists=False,
        )
    return len(plans)


def _failures(outcome: TrialOutcome, seed: int, trials: list[optuna.trial.FrozenTrial]) -> int:
    return sum(
        1
        for t in trials
        if t.user_attrs.get(keys.RACE_OF) == outcome.number
        and t.user_attrs.get(keys.RACE_SEEDS) == [seed]
        and is_failed(t)
    )


def _next_seed(
    outcome: TrialOutcome,
    extra: list[int],
    trials: list[optuna.trial.FrozenTrial],
    max_retries: int,
) -> int | None:
    """The first extra seed ``outcome`` lacks, unless its racing trials failed too often."""
    for seed in extra:
        if seed in outcome.seed_values or _raced(outcome, seed, trials):
            continue
        return seed if _failures(outcome, seed, trials) <= max_retries else None
    return None


def _raced(outcome: TrialOutcome, seed: int, trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Whether a racing trial already ran ``seed`` for ``outcome`` (whatever it found)."""
    return any(
        t.user_attrs.get(keys.RACE_OF) == outcome.number
        and t.user_attrs.get(keys.RACE_SEEDS) == [seed]
        and is_scored(t)
        for t in trials
    )
