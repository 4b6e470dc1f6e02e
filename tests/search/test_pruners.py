"""PairedPruner in real Optuna studies (ask/tell), as a user's study would use it."""

from __future__ import annotations

import math

import optuna
import pytest

from hptune import ExperimentalWarning, keys
from hptune.search import PairedPruner, epoch_pruner, report_seed_epoch, seed_curves


def start(study: optuna.Study, epochs: int = 2, **user_attrs: object) -> optuna.Trial:
    study.enqueue_trial({"epochs": epochs}, user_attrs=dict(user_attrs))
    trial = study.ask()
    trial.suggest_int("epochs", 1, 8)
    return trial


def train(
    study: optuna.Study,
    trial: optuna.Trial,
    curves: dict[int, list[float]],
    *,
    finish: bool = True,
    together: bool = False,
) -> str:
    """Report every seed's curve in order, seeds one after the other as hptune does, or side
    by side, epoch by epoch, as its seeds trained together do."""
    stride = trial.params["epochs"]
    reports = [
        (index, seed, epoch, value)
        for index, (seed, values) in enumerate(curves.items())
        for epoch, value in enumerate(values, start=1)
    ]
    if together:
        trial.set_user_attr(keys.SEEDS_TOGETHER, True)
        reports.sort(key=lambda r: (r[2], r[0]))
    for index, seed, epoch, value in reports:
        report_seed_epoch(trial, seed, value)
        trial.report(value, index * stride + epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return "pruned"
    if finish:
        study.tell(trial, sum(v[-1] for v in curves.values()) / len(curves))
    return "complete" if finish else "running"


REFERENCE = {0: [3.0, 2.0], 1: [3.2, 2.4], 2: [3.1, 2.2]}  # seed std at epoch 2: 0.2
#: Each reference's own noise around REFERENCE, by seed: the paired noise the pruner sees
#: (about 0.05 per seed once the seeds' common part is removed).
JITTER = [[0.0, 0.0, 0.0], [0.05, -0.05, 0.0], [-0.05, 0.0, 0.05], [0.0, 0.05, -0.05]]


def study_with_references(pruner: optuna.pruners.BasePruner, n: int = 3) -> optuna.Study:
    study = optuna.create_study(pruner=pruner)
    for shift in range(n):
        curves = {s: [v + JITTER[shift][s] for v in c] for s, c in REFERENCE.items()}
        assert train(study, start(study), curves) == "complete"
    return study


def test_a_lucky_first_seed_does_not_hide_worse_seeds() -> None:
    # Seed 0 far better than the references, seeds 1 and 2 far worse: worse on average.
    lucky = {0: [2.5, 1.5], 1: [3.6, 3.3], 2: [3.6, 3.3]}
    study = study_with_references(epoch_pruner())
    assert train(study, start(study), lucky) == "pruned"
    pruned = study.trials[-1]
    assert [s for s, _ in seed_curves(pruned)] == [0, 1]  # stopped in seed 1, not at the end
    # Optuna's median pruner keeps the trial's best step (seed 0's) and never prunes it.
    median = study_with_references(optuna.pruners.MedianPruner(n_startup_trials=2))
    assert train(median, start(median), lucky) == "complete"


def test_an_unlucky_first_seed_within_noise_is_not_pruned() -> None:
    # Seed 0 a little behind (0.1, half a seed std), seeds 1 and 2 ahead: equal on average.
    unlucky = {0: [3.1, 2.1], 1: [3.1, 2.35], 2: [3.0, 2.15]}
    study = study_with_references(epoch_pruner())
    assert train(study, start(study), unlucky) == "complete"


def test_a_trial_behind_beyond_the_margin_is_pruned_after_its_first_seed() -> None:
    study = study_with_references(epoch_pruner())
    assert train(study, start(study), {0: [3.5, 2.8], 1: [3.5, 2.8]}) == "pruned"
    assert study.trials[-1].last_step == 2  # seed 0, epoch 2: one seed of three trained


def test_a_reference_still_running_is_waited_for() -> None:
    study = study_with_references(epoch_pruner())
    running = start(study)
    train(study, running, {0: [3.0]}, finish=False)  # seed 0, epoch 1 only
    behind = start(study)
    # Behind the two finished references at epoch 2, but a third, earlier trial has not
    # reached epoch 2 yet: the verdict waits for it (as it would with one worker).
    assert train(study, behind, {0: [3.5, 2.8]}, finish=False) == "running"
    report_seed_epoch(running, 0, 2.0)  # the reference reaches seed 0, epoch 2
    running.report(2.0, 2)
    report_seed_epoch(behind, 1, 3.5)  # the next report judges the waiting position
    behind.report(3.5, 3)
    assert behind.should_prune()


def test_shorter_schedules_are_never_the_reference_of_longer_ones() -> None:
    pruner = epoch_pruner(schedule_param="epochs")
    study = optuna.create_study(pruner=pruner)
    for _ in range(2):
        train(study, start(study, epochs=2), REFERENCE)
    long = {0: [3.5, 2.8, 2.5], 1: [3.5, 2.8, 2.5]}  # behind the 2-epoch runs at epoch 2
    assert train(study, start(study, epochs=3), long) == "complete"
    # The same curve among 3-epoch references is pruned.
    same = optuna.create_study(pruner=pruner)
    for shift in range(3):
        train(
            same,
            start(same, epochs=3),
            {s: [v + JITTER[shift][s] for v in [*c, c[-1] - 0.1]] for s, c in REFERENCE.items()},
        )
    assert train(same, start(same, epochs=3), long) == "pruned"


def test_racing_trials_are_neither_pruned_nor_references() -> None:
    study = study_with_references(epoch_pruner())
    raced = start(study, **{keys.RACE_OF: 0, keys.RACE_SEEDS: [3]})
    assert train(study, raced, {3: [9.0, 9.0]}) == "complete"  # far behind, never pruned
    # Only the two references count: a trial equal to them is kept.
    assert train(study, start(study), REFERENCE) == "complete"


def test_fewer_references_than_the_startup_count_prune_nothing() -> None:
    study = study_with_references(epoch_pruner(n_startup_trials=3), n=2)
    assert train(study, start(study), {0: [3.5, 2.8], 1: [3.5, 2.8]}) != "pruned"


def test_maximize_direction() -> None:
    study = optuna.create_study(direction="maximize", pruner=epoch_pruner())
    for shift in range(3):
        train(
            study,
            start(study),
            {s: [-v - JITTER[shift][s] for v in c] for s, c in REFERENCE.items()},
        )
    assert train(study, start(study), {0: [-3.5, -2.8], 1: [-3.5, -2.8]}) == "pruned"
    assert train(study, start(study), {0: [-2.5, -1.8], 1: [-2.5, -1.8]}) == "complete"


def test_arguments_and_values_are_checked() -> None:
    with pytest.raises(ValueError, match="min_epoch"):
        PairedPruner(min_epoch=0)
    with pytest.raises(ValueError, match="margin"):
        PairedPruner(margin=-1.0)
    study = optuna.create_study()
    with pytest.raises(ValueError, match="finite"):
        report_seed_epoch(study.ask(), 0, float("nan"))


def test_a_constant_rate_is_compared_with_constant_rates_only() -> None:
    """Mid-run a constant rate is behind a decaying one whatever its end: with
    ``shape_params`` the linear trials are not its references."""
    pruner = epoch_pruner(shape_params=("scheduler",))

    def begin(study: optuna.Study, scheduler: str) -> optuna.Trial:
        study.enqueue_trial({"epochs": 2, "scheduler": scheduler})
        trial = study.ask()
        trial.suggest_int("epochs", 1, 8)
        trial.suggest_categorical("scheduler", ["linear", "constant"])
        return trial

    study = optuna.create_study(pruner=pruner)
    for shift in range(3):
        curves = {s: [v + JITTER[shift][s] for v in c] for s, c in REFERENCE.items()}
        assert train(study, begin(study, "linear"), curves) == "complete"
    behind = {0: [3.5, 2.8], 1: [3.7, 3.2], 2: [3.6, 3.0]}
    assert train(study, begin(study, "constant"), behind) == "complete"
    assert train(study, begin(study, "linear"), behind) == "pruned"


def test_references_that_differ_by_exact_shifts_give_no_noise_and_prune_nothing() -> None:
    study = optuna.create_study(pruner=epoch_pruner())
    for shift in (0.0, 0.01, 0.02, 0.5):  # the last far behind, by exactly 0.5 everywhere
        state = train(
            study, start(study), {s: [v + shift for v in c] for s, c in REFERENCE.items()}
        )
    assert state == "complete"


def test_a_trial_equal_to_its_references_is_pruned_at_most_alpha_of_the_time() -> None:
    """Simulated phases: 4 references and a trial all equal in truth (seed effects shared,
    noise of their own), 3 seeds x 4 epochs; over 300 phases the trial is pruned at most
    5% of the time plus three Monte Carlo standard errors."""
    import random
    import warnings

    rng = random.Random(0)
    pruned = 0
    draws = 300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        for _ in range(draws):
            study = optuna.create_study(pruner=epoch_pruner())
            seed_effect = {s: rng.gauss(0, 0.2) for s in range(3)}
            for _ in range(5):
                curves = {
                    s: [3.0 - 0.2 * e + seed_effect[s] + rng.gauss(0, 0.1) for e in range(4)]
                    for s in range(3)
                }
                state = train(study, start(study, epochs=4), curves)
            pruned += state == "pruned"
    assert pruned / draws <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / draws)


def test_looks_within_epochs_are_positions_compared_only_with_as_many_looks() -> None:
    # With training.eval_steps each epoch adds looks_per_epoch positions (here 2: one look
    # and the end); a trial far behind at its first look is pruned there, within epoch 1.
    def study_of(looks: int) -> optuna.Study:
        study = optuna.create_study(pruner=PairedPruner(min_epoch=1))
        for shift in range(3):
            curves = {s: [v + JITTER[shift][s] for v in (4.0, *c)] for s, c in REFERENCE.items()}
            trial = start(study, **{keys.LOOKS_PER_EPOCH: looks})
            assert train(study, trial, curves) == "complete"
        return study

    behind = {0: [6.0, 5.0, 4.5], 1: [6.0, 5.0, 4.5]}
    study = study_of(2)
    trial = start(study, **{keys.LOOKS_PER_EPOCH: 2})
    assert train(study, trial, behind) == "pruned"
    assert study.trials[-1].last_step == 1  # the first position: the look within epoch 1
    # trials looking at other steps of the schedule are no references: nothing to compare with
    other = study_of(1)
    assert train(other, start(other, **{keys.LOOKS_PER_EPOCH: 2}), behind) == "complete"


def test_seeds_reported_side_by_side_keep_one_curve_each_and_prune_alike() -> None:
    study = study_with_references(epoch_pruner())
    assert train(study, start(study), {0: [3.5, 2.8], 1: [3.5, 2.8]}, together=True) == "pruned"
    # pruned at seed 0's epoch 2, once both seeds had their first epoch
    assert seed_curves(study.trials[-1]) == [(0, [3.5, 2.8]), (1, [3.5])]
    level = {s: [v + 0.01 for v in c] for s, c in REFERENCE.items()}
    assert train(study, start(study), level, together=True) == "complete"
    assert seed_curves(study.trials[-1]) == [(s, c) for s, c in level.items()]


def test_a_reference_training_its_seeds_together_is_waited_for_on_every_seed() -> None:
    study = study_with_references(epoch_pruner())
    running = start(study)
    # side by side, every seed at epoch 1: none of them has ended, unlike seeds one after
    # the other, where seeds 0 and 1 would count as finished (stopped early) here
    train(study, running, {0: [3.0], 1: [3.2], 2: [3.1]}, finish=False, together=True)
    behind = start(study)
    assert train(study, behind, {0: [3.5, 2.8]}, finish=False) == "running"
    for seed, value in ((0, 2.0), (1, 2.4), (2, 2.2)):
        report_seed_epoch(running, seed, value)
    report_seed_epoch(behind, 1, 3.5)  # the next report judges the waiting position
    behind.report(3.5, 3)
    assert behind.should_prune()
