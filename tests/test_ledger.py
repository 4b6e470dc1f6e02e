"""The ledger reads what a run trained from its storage (real Optuna studies and trials)."""

import optuna
import pytest

from hptune import keys
from hptune.config import config_from_dict
from hptune.ledger import BudgetLedger, trained_so_far


def _config(tmp_path):
    return config_from_dict({
        "name": "l", "model": {"path": "demo://model"}, "output_dir": str(tmp_path),
        "data": {"train": "t.jsonl", "validation": "v.jsonl"},
        "phases": {"run": ["baseline", "learning_rate"]}, "budget": {"gpu_hours": 1},
    })  # fmt: skip


def _run(epochs: int, seconds: float, examples_per_second: float) -> dict:
    return {"seed": 0, "epochs": [{"epoch": e} for e in range(1, epochs + 1)],
            "seconds": seconds, "examples_per_second": examples_per_second,
            "processes": 1}  # fmt: skip


def test_a_failed_trial_counts_in_the_spend_but_not_in_the_measured_throughput(tmp_path) -> None:
    config = _config(tmp_path)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=config.study_name("baseline"))
    done = study.ask()
    done.set_user_attr(keys.RUNS, [_run(2, 100.0, 50.0)])  # 5000 examples in 100 s
    study.tell(done, 1.0)
    failed = study.ask()  # an OOM after 2 epochs: curves recorded, no run stored
    failed.set_user_attr(keys.SEED_CURVES, [[0, [1.2, 1.1]]])
    study.tell(failed, state=optuna.trial.TrialState.FAIL)

    spent = trained_so_far(config, storage)
    assert spent["seed_epochs"] == 4
    assert spent["gpu_seconds"] == pytest.approx(200.0)  # the failed epochs at the mean rate
    rate, how = BudgetLedger(config, storage, n_train=1000).examples_per_second(spent)
    assert (rate, how) == (pytest.approx(50.0), "measured")  # not 5000 / 200 = 25
