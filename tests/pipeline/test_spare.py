"""Spare trials: what a compute budget leaves once a phase's trials and racing are done goes
to configurations not measured yet (the regularization phase's best at other epoch counts)."""

from __future__ import annotations

import optuna

from hptune import keys
from hptune.budget import planned_after
from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.ledger import BudgetLedger
from hptune.phases import RegularizationPhase
from hptune.pipeline import work_through_queue
from hptune.storage import open_storage
from tests.pipeline._trained import record_trained

BASE = HParams(learning_rate=1e-3, batch_size=4, gradient_accumulation_steps=1, epochs=2,
               warmup_ratio=0.0, weight_decay=0.01, scheduler="linear")  # fmt: skip
GIVEN = [{"scheduler": "constant_with_warmup"}]
# By (scheduler, epochs): a constant rate gains from a longer run, a linear decay does not.
MEANS = {("linear", 1): 2.3, ("linear", 2): 2.0, ("linear", 3): 2.02,
         ("constant_with_warmup", 1): 2.4, ("constant_with_warmup", 2): 1.9,
         ("constant_with_warmup", 3): 1.6}  # fmt: skip
NOISE = [0.0, 0.01, -0.01]


def run(tmp_path, budget: int | None, has_test: bool = False) -> tuple[optuna.Study, object]:
    raw = {"name": "spare", "model": {"path": "demo://model"},
           "data": {"train": "t.jsonl", "validation": "v.jsonl"},
           "objective": {"seeds": 3, "max_seeds": 3}, "output_dir": str(tmp_path),
           "phases": {"run": ["epochs", "regularization"],
                      "epochs": {"range": [1, 3]}}}  # fmt: skip
    if budget is not None:
        raw["budget"] = {"seed_epochs": budget}
    config = config_from_dict(raw)
    phase = RegularizationPhase(
        candidates=GIVEN, rate_factors=[1.0], epoch_counts=[1, 3], incoming=BASE
    )
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name="spare.regularization",
                                sampler=phase.create_sampler())  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        hp = phase.suggest(trial, BASE)
        values = {str(s): MEANS[hp.scheduler, hp.epochs] + NOISE[s] for s in range(3)}
        return record_trained(trial, hp, values)

    ledger = None if budget is None else BudgetLedger(config, storage, 100, has_test=has_test)
    return study, work_through_queue(config, storage, study, phase, BASE, objective,
                                     ledger=ledger)  # fmt: skip


def _spares(study: optuna.Study) -> list[tuple[str, int]]:
    return [(t.params["scheduler"], t.params["epochs"]) for t in study.trials
            if keys.SPARE in t.user_attrs]  # fmt: skip


def test_the_room_left_tries_the_best_at_the_other_counts_nearest_first(tmp_path) -> None:
    """The two candidates (12 seed-epochs) leave 18: the best (constant) at 3 epochs (9),
    then at 1 (3). The incoming configuration at its own rate is not tried again: its other
    counts are the epochs phase's trials. The constant rate's longer run wins, and the
    decision carries its count."""
    study, result = run(tmp_path, budget=12 + 18)
    assert _spares(study) == [("constant_with_warmup", 3), ("constant_with_warmup", 1)]
    assert result.decision.params["scheduler"] == "constant_with_warmup"
    assert result.decision.params["epochs"] == 3
    assert "over 3 epochs at rate" in result.decision.reason
    trained = sum(3 * t.params["epochs"] for t in study.trials)
    assert trained <= 30  # never past the budget


def test_no_room_no_spare_and_the_phase_decides_at_its_own_count(tmp_path) -> None:
    study, result = run(tmp_path, budget=12 + 8)  # less than the first spare's 9
    assert _spares(study) == [("constant_with_warmup", 1)]  # 3 of 8
    study, result = run(tmp_path / "tight", budget=12 + 2)
    assert _spares(study) == []
    assert "epochs" not in result.decision.params  # the incoming count, not restated


def test_without_a_budget_the_phase_runs_as_planned(tmp_path) -> None:
    study, result = run(tmp_path, budget=None)
    assert _spares(study) == [] and len(study.trials) == 2
    assert result.decision.params["scheduler"] == "constant_with_warmup"


def test_a_spare_count_pays_what_it_adds_to_the_final_evaluation(tmp_path) -> None:
    """With a test split the final evaluation is held back at the incoming count; a spare
    trial at 3 epochs would make it train 3 epochs a seed, so it pays that too."""
    config = config_from_dict({"name": "spare", "model": {"path": "demo://model"},
                               "data": {"train": "t.jsonl", "validation": "v.jsonl"},
                               "phases": {"run": ["epochs", "regularization"]}})  # fmt: skip
    final = planned_after(config, BASE, 100, "regularization", has_test=True)["final"]
    more = planned_after(config, BASE.replace(epochs=3), 100, "regularization", has_test=True)
    assert more["final"] > final  # the count reaches the final evaluation
    room = 9 + more["final"] - final - 1  # one short of the count's whole cost
    study, _ = run(tmp_path, budget=12 + final + room, has_test=True)
    assert _spares(study) == [("constant_with_warmup", 1)]
    study, _ = run(tmp_path / "paid", budget=12 + final + room + 1, has_test=True)
    assert _spares(study)[0] == ("constant_with_warmup", 3)
