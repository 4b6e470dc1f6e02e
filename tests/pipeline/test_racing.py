"""Racing: extra paired seeds for the configurations a phase cannot tell apart yet."""

from __future__ import annotations

import math
import statistics

import optuna

from hptune import keys
from hptune.budget import planned_after
from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.ledger import BudgetLedger
from hptune.phases import LearningRatePhase, racing_trials_at_most
from hptune.pipeline import work_through_queue
from hptune.record import decision_outcomes
from hptune.storage import open_storage

BASE = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=1, epochs=1,
               warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip
A = [2.00, 2.10, 2.05, 2.02, 2.08]  # the best rate, by seed
VALUES = {
    1e-4: A,
    # 0.05 worse than A on every seed: not told apart with 3 seeds, separated with 4
    5e-5: [a + d for a, d in zip(A, [0.05, 0.02, 0.07, 0.06, 0.05], strict=True)],
    1e-5: [2.5, 2.66, 2.52, 2.55, 2.56],  # worse beyond noise from the start
}


def _config(tmp_path, max_seeds: int, budget: int | None = None):
    raw = {"name": "race", "model": {"path": "demo://model"},
           "data": {"train": "t.jsonl", "validation": "v.jsonl"},
           "objective": {"seeds": 3, "max_seeds": max_seeds},
           "output_dir": str(tmp_path)}  # fmt: skip
    if budget is not None:  # a later phase for racing to leave its share of the budget to
        raw |= {"budget": {"seed_epochs": budget}, "phases": {"run": ["learning_rate", "epochs"]}}
    return config_from_dict(raw)


def _later(tmp_path) -> int:
    """The seed-epochs the epochs phase is planned to train after this one (racing left out)."""
    later = planned_after(_config(tmp_path, 5, budget=1), BASE, 100, "learning_rate",
                          has_test=False)  # fmt: skip
    assert list(later) == ["epochs"] and later["epochs"] > 2
    return later["epochs"]


def run(tmp_path, max_seeds: int, budget: int | None = None) -> tuple[optuna.Study, object]:
    config = _config(tmp_path, max_seeds, budget)
    phase = LearningRatePhase(sorted(VALUES), extend_edges=0)  # the table's rates only
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name="race.learning_rate",
                                sampler=phase.create_sampler())  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        hp = phase.suggest(trial, BASE)
        seeds = trial.user_attrs.get(keys.RACE_SEEDS) or [0, 1, 2]
        values = {str(s): VALUES[hp.learning_rate][s] for s in seeds}
        if any(math.isnan(v) for v in values.values()):  # as the objective does: one seed
            keys.set_status(trial, TrialStatus.DIVERGED)  # diverged, the trial diverged
            raise optuna.TrialPruned("diverged")
        if budget is not None:  # what the ledger counts: one epoch per seed
            trial.set_user_attr(keys.HPARAMS, hp.to_dict())
            trial.set_user_attr(keys.RUNS, [
                {"seed": s, "epochs": [{"epoch": 1, "train_loss": 1.0, "eval_loss": 1.0}]}
                for s in seeds])  # fmt: skip
        trial.set_user_attr(keys.SEED_VALUES, values)
        keys.set_status(trial, TrialStatus.OK)
        return statistics.fmean(values.values())

    ledger = None if budget is None else BudgetLedger(config, storage, 100, has_test=False)
    return study, work_through_queue(config, storage, study, phase, BASE, objective,
                                     ledger=ledger)  # fmt: skip


def test_the_undecided_contender_and_the_best_get_one_more_paired_seed(tmp_path) -> None:
    study, result = run(tmp_path, max_seeds=5)
    racing = [t for t in study.trials if keys.RACE_OF in t.user_attrs]
    raced = sorted((t.params["learning_rate"], t.user_attrs[keys.RACE_SEEDS][0]) for t in racing)
    assert raced == [(5e-5, 3), (1e-4, 3)]  # one round: 4 seeds separate them
    seeds = {o.params["learning_rate"]: sorted(o.seed_values) for o in result.outcomes}
    assert seeds == {1e-5: [0, 1, 2], 5e-5: [0, 1, 2, 3], 1e-4: [0, 1, 2, 3]}
    assert result.decision.case == "clear_winner"
    assert result.decision.params == {"learning_rate": 1e-4}
    assert "4 paired seeds" in result.decision.reason
    assert len(decision_outcomes(study.trials)) == 3  # racing trials join their trial


def test_no_racing_above_the_configured_seeds(tmp_path) -> None:
    study, result = run(tmp_path, max_seeds=3)
    assert not [t for t in study.trials if keys.RACE_OF in t.user_attrs]
    assert result.decision.case == "best_mean_undecided"
    assert result.decision.params == {"learning_rate": 1e-4}


def test_racing_stops_at_max_seeds_when_the_question_stays_open(tmp_path, monkeypatch) -> None:
    gaps = [0.05, -0.04, 0.07, -0.05, 0.06]
    monkeypatch.setitem(VALUES, 5e-5, [a + d for a, d in zip(A, gaps, strict=True)])
    study, result = run(tmp_path, max_seeds=5)
    racing = [t for t in study.trials if keys.RACE_OF in t.user_attrs]
    assert len(racing) == 4  # seeds 3 and 4 for both, then the cap
    assert result.decision.case == "best_mean_undecided"
    assert "with 5 seeds" in result.decision.reason


def test_every_contender_not_told_apart_races_at_once(tmp_path, monkeypatch) -> None:
    """Five rates within noise of the best: the first racing round gives seed 3 to all five
    (no limit of contenders at a time)."""
    close = {1e-6: [0.03, -0.02, 0.04], 3e-6: [-0.01, 0.05, 0.02], 3e-5: [0.02, 0.03, -0.03],
             5e-5: [0.04, -0.03, 0.01]}  # fmt: skip
    for rate, gaps in close.items():
        monkeypatch.setitem(VALUES, rate, [a + d for a, d in zip(A, [*gaps, 0, 0], strict=True)])
    monkeypatch.delitem(VALUES, 1e-5)
    study, _ = run(tmp_path, max_seeds=4)
    first = [t.params["learning_rate"] for t in study.trials
             if t.user_attrs.get(keys.RACE_SEEDS) == [3]]  # fmt: skip
    assert sorted(first) == sorted(VALUES)


def test_a_configuration_that_diverges_on_a_racing_seed_is_diverged(tmp_path, monkeypatch):
    """The rule for a diverged seed is the same on racing seeds as on the first ones: the
    configuration is unstable, marked diverged, and never wins; the next best decides."""
    monkeypatch.setitem(VALUES, 1e-4, [*A[:3], math.nan, A[4]])
    _, result = run(tmp_path, max_seeds=5)
    status = {o.params["learning_rate"]: o.status for o in result.outcomes}
    assert status[1e-4] == TrialStatus.DIVERGED
    assert result.decision.params == {"learning_rate": 5e-5}
    assert "diverged on a seed, so never chosen: 0.0001" in result.decision.reason


def test_the_plan_bounds_racing() -> None:
    config = config_from_dict({"name": "race", "model": {"path": "demo://model"},
                               "data": {"train": "t.jsonl", "validation": "v.jsonl"}})  # fmt: skip
    assert config.objective.racing_seeds == [3, 4]
    assert racing_trials_at_most(2, 1) == 0
    assert racing_trials_at_most(2, 4) == 8  # 4 configurations, 2 extra seeds each
    assert racing_trials_at_most(2, 8) == 16  # any configuration not told apart may race


def test_under_a_budget_racing_is_queued_when_what_is_left_after_the_later_phases_pays_it(
    tmp_path,
) -> None:
    """9 seed-epochs trained (3 rates x 3 seeds x 1 epoch); the epochs phase's plan kept;
    the contender's seed and the best's (1 epoch each) are left: both are queued."""
    study, result = run(tmp_path, max_seeds=5, budget=9 + _later(tmp_path) + 2)
    racing = [t for t in study.trials if keys.RACE_OF in t.user_attrs]
    raced = sorted((t.params["learning_rate"], t.user_attrs[keys.RACE_SEEDS][0]) for t in racing)
    assert raced == [(5e-5, 3), (1e-4, 3)]
    assert result.decision.case == "clear_winner"


def test_under_a_budget_racing_is_not_queued_when_the_later_phases_need_what_is_left(
    tmp_path,
) -> None:
    """One seed-epoch short of the pair once the epochs phase's plan is kept (without it,
    the budget would pay racing many times over): the phase decides on what it has."""
    study, result = run(tmp_path, max_seeds=5, budget=9 + _later(tmp_path) + 1)
    assert not [t for t in study.trials if keys.RACE_OF in t.user_attrs]
    assert result.decision.case == "best_mean_undecided"
    assert result.decision.params == {"learning_rate": 1e-4}


def test_under_a_budget_only_the_contenders_it_pays_for_race_each_with_the_best(
    tmp_path, monkeypatch
) -> None:
    """Four rates within noise of the best, room for 3 one-epoch seeds: two contenders and
    the best on their shared seed (its cost counted once), then the phase decides."""
    close = {1e-6: [0.03, -0.02, 0.04], 3e-6: [-0.01, 0.05, 0.02], 3e-5: [0.02, 0.03, -0.03],
             5e-5: [0.04, -0.03, 0.01]}  # fmt: skip
    for rate, gaps in close.items():
        monkeypatch.setitem(VALUES, rate, [a + d for a, d in zip(A, [*gaps, 0, 0], strict=True)])
    monkeypatch.delitem(VALUES, 1e-5)
    study, _ = run(tmp_path, max_seeds=4, budget=5 * 3 + _later(tmp_path) + 3)
    racing = [t.params["learning_rate"] for t in study.trials if keys.RACE_OF in t.user_attrs]
    assert len(racing) == 3 and 1e-4 in racing
