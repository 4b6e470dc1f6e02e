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


def test_epochs_before_an_out_of_memory_count(tmp_path) -> None:
    config = _config(tmp_path)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=config.study_name("baseline"))
    oom = study.ask()  # seed 0 trained 2 epochs and was stored; seed 1 ran out in epoch 2
    oom.set_user_attr(keys.RUNS, [_run(2, 100.0, 50.0)])
    oom.set_user_attr(keys.SEED_CURVES, [[0, [1.2, 1.1]], [1, [1.3]]])
    study.tell(oom, state=optuna.trial.TrialState.FAIL)
    spent = trained_so_far(config, storage)
    assert spent["seed_epochs"] == 3
    assert spent["gpu_seconds"] == pytest.approx(150.0)


def test_a_resumed_retry_counts_only_what_it_trained_itself(tmp_path) -> None:
    config = _config(tmp_path)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=config.study_name("baseline"))
    killed = study.ask()  # killed after 2 epochs (20 s): no run stored
    killed.set_user_attr(keys.SEED_CURVES, [[0, [1.2, 1.1]]])
    study.tell(killed, state=optuna.trial.TrialState.FAIL)
    retry = study.ask()  # resumed from epoch 2: its run holds all 4 epochs and 40 s
    run = {**_run(4, 40.0, 50.0), "resumed_after": 2, "resumed_seconds": 20.0}
    retry.set_user_attr(keys.RUNS, [run])
    study.tell(retry, 1.0)
    spent = trained_so_far(config, storage)
    assert spent["seed_epochs"] == 4
    assert spent["measured_gpu_seconds"] == pytest.approx(20.0)  # not 40
    assert spent["gpu_seconds"] == pytest.approx(40.0)  # + the killed 2 epochs at 10 s each
    rate, _ = BudgetLedger(config, storage, n_train=1000).examples_per_second(spent)
    assert rate == pytest.approx(50.0)
