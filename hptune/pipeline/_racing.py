"""Racing: more paired seeds for the configurations a phase cannot tell apart yet.

Once a phase's trials are done, its best configuration and each contender are either
separated beyond seed noise, shown equivalent, or undecided (``hptune.seeds.Verdict``).
Every undecided contender, and the best, trains on one more seed, the same seed for all
(paired), until every question is settled or each has ``objective.max_seeds`` seeds; a
"worse" label is revised when the next seeds say otherwise (the phase ranks again on every
seed). A racing trial has the parameters of
the trial it races for and adds its seeds to that trial's evidence
(``hptune.record.decision_outcomes``).

Under a compute budget, racing is paid from what the budget has left (`racing_room`): what
the storage holds as trained and the running trials are taken off, and so is the plan of
the phases that have not started (racing left out, ``hptune.budget.planned_after``). Only
the racing trials that fit are queued, the cheapest first, each contender's with the best's
on the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hptune import keys
from hptune.budget import planned_after
from hptune.stored import is_failed, is_scored

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.hparams import HParams
    from hptune.ledger import BudgetLedger
    from hptune.phases import NoiseRanking, TrialOutcome

__all__ = ["RacingRoom", "later_reserve", "queue_racing", "racing_room"]


@dataclass(frozen=True)
class RacingRoom:
    """What racing may spend now, under a compute budget.

    Args:
        seed_epochs: Seed-epochs racing may queue now (`racing_room`).
        epochs: The epochs a racing trial is counted at when its trial did not record its
            own (``keys.HPARAMS``): the phase's longest run.
    """

    seed_epochs: float
    epochs: int


def racing_room(
    ledger: BudgetLedger, config: TuneConfig, phase: str, base: HParams, epochs: int
) -> RacingRoom:
    """What racing in ``phase`` may spend now: the budget less what the storage holds as
    trained, the running trials, and the plan (racing left out) of the phases of the run
    after ``phase`` that have not started.

    Args:
        ledger: The run's ledger (its budget, storage and training examples).
        config: The run's (fitted) configuration.
        phase: The phase that races.
        base: The configuration ``phase`` starts from (the later phases are planned from it).
        epochs: The phase's longest run (see `RacingRoom`).

    Returns:
        The room; its ``seed_epochs`` may be 0 or less (nothing is queued then).
    """
    return RacingRoom(ledger.left(later=later_reserve(ledger, config, phase, base)), epochs)


def later_reserve(ledger: BudgetLedger, config: TuneConfig, phase: str, base: HParams) -> int:
    """The seed-epochs the phases after ``phase`` that have not started are planned to train
    (racing left out), planned from ``base``.

    Args:
        ledger: The run's ledger (which phases started).
        config: The run's (fitted) configuration.
        phase: The phase that asks.
        base: The configuration the later phases are planned from.

    Returns:
        The seed-epochs to hold back for them.
    """
    later = planned_after(config, base, ledger.n_train, phase, has_test=ledger.has_test)
    return sum(cost for name, cost in later.items() if not ledger.started(name))


def queue_racing(
    study: optuna.Study,
    config: TuneConfig,
    ranking: NoiseRanking,
    trials: list[optuna.trial.FrozenTrial],
    *,
    room: RacingRoom | None = None,
) -> int:
    """Queue one more paired seed for the best configuration and its undecided contenders.

    Call it under the study's queue lock, with nothing queued or running.

    Args:
        study: The phase's study.
        config: The run's configuration (racing seeds, retries).
        ranking: The phase's trials that trained, at least two, ranked within seed noise.
        trials: The study's trials, as read under the lock.
        room: What a compute budget lets racing spend now; None: no budget (every racing
            trial is queued).

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
    if room is not None:
        plans = _affordable(plans, ranking.best, trials, config.max_retries, room)
    if not plans:
        return 0
    for seed in sorted({seed for _, seed in plans}):
        if _best_races(ranking.best, seed, trials, config.max_retries):
            plans.append((ranking.best, seed))  # the best on the same seed: a paired comparison
    for outcome, seed in plans:
        study.enqueue_trial(
            outcome.params,
            user_attrs={keys.RACE_OF: outcome.number, keys.RACE_SEEDS: [seed]},
            skip_if_exists=False,
        )
    return len(plans)


def _affordable(
    plans: list[tuple[TrialOutcome, int]],
    best: TrialOutcome,
    trials: list[optuna.trial.FrozenTrial],
    max_retries: int,
    room: RacingRoom,
) -> list[tuple[TrialOutcome, int]]:
    """The contenders' racing trials ``room`` pays for, each with the best's on its seed
    (once per seed), the cheapest first; in ``plans``' order."""
    left = room.seed_epochs
    paired: set[int] = set()
    kept: set[int] = set()
    costs = [_epochs(outcome, trials, room) for outcome, _ in plans]
    for index in sorted(range(len(plans)), key=costs.__getitem__):  # stable: ties in order
        seed = plans[index][1]
        pair = seed not in paired and _best_races(best, seed, trials, max_retries)
        need = costs[index] + (_epochs(best, trials, room) if pair else 0)
        if need <= left:
            kept.add(index)
            left -= need
            paired |= {seed} if pair else set()
    return [plan for index, plan in enumerate(plans) if index in kept]


def _epochs(outcome: TrialOutcome, trials: list[optuna.trial.FrozenTrial], room: RacingRoom) -> int:
    """The epochs ``outcome``'s racing trial trains (one seed): its trial's, as recorded."""
    for trial in trials:
        if trial.number == outcome.number:
            recorded = trial.user_attrs.get(keys.HPARAMS, {}).get("epochs")
            return room.epochs if recorded is None else int(recorded)
    return room.epochs


def _best_races(
    best: TrialOutcome, seed: int, trials: list[optuna.trial.FrozenTrial], max_retries: int
) -> bool:
    """Whether the best trains ``seed`` beside a contender: it lacks it, no racing trial of
    it scored it yet, and its racing trials on it did not fail too often."""
    return (
        seed not in best.seed_values
        and not _raced(best, seed, trials)
        and _failures(best, seed, trials) <= max_retries
    )


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
