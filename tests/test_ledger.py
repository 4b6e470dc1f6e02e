"""The ledger reads what a run trained from its storage (real Optuna studies and trials)."""

import optuna
import pytest

from hptune import keys
from hptune.config import config_from_dict
from hptune.ledger import BudgetLedger, trained_by_phase, trained_so_far


def _config(tmp_path, budget: dict | None = None):
    return config_from_dict({
        "name": "l", "model": {"path": "demo://model"}, "output_dir": str(tmp_path),
        "data": {"train": "t.jsonl", "validation": "v.jsonl"},
        "phases": {"run": ["baseline", "learning_rate"]}, "budget": budget or {"gpu_hours": 1},
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


def _spent_and_running(config, storage) -> None:
    """The baseline trained 2 seed-epochs in 100 s (50 examples/s); a learning-rate trial of
    3 epochs on the 3 seeds runs elsewhere."""
    baseline = optuna.create_study(storage=storage, study_name=config.study_name("baseline"))
    done = baseline.ask()
    done.set_user_attr(keys.RUNS, [_run(2, 100.0, 50.0)])
    baseline.tell(done, 1.0)
    rates = optuna.create_study(storage=storage, study_name=config.study_name("learning_rate"))
    running = rates.ask()
    running.set_user_attr(keys.HPARAMS, {"epochs": 3})


def test_what_is_left_takes_off_the_trained_the_running_and_what_comes_later(tmp_path) -> None:
    config = _config(tmp_path, {"seed_epochs": 20})
    storage = optuna.storages.InMemoryStorage()
    _spent_and_running(config, storage)
    ledger = BudgetLedger(config, storage, n_train=1000)
    assert ledger.left() == 20 - 2 - 9  # the running trial at its whole cost: 3 seeds x 3
    assert ledger.left(later=4) == 20 - 2 - 9 - 4
    assert ledger.started("learning_rate") and not ledger.started("epochs")


def test_what_is_left_of_gpu_hours_is_converted_at_the_measured_throughput(tmp_path) -> None:
    config = _config(tmp_path, {"gpu_hours": 1, "examples_per_second": 1000})
    storage = optuna.storages.InMemoryStorage()
    _spent_and_running(config, storage)
    ledger = BudgetLedger(config, storage, n_train=1000)
    # 3500 s left at 50 examples/s (measured, not the estimate): 175 epochs of 1000 examples
    assert ledger.left(later=4) == pytest.approx(175 - 9 - 4)


def test_what_each_phase_trained_counts_its_racing_and_probes_apart(tmp_path) -> None:
    config = _config(tmp_path)
    storage = optuna.storages.InMemoryStorage()
    baseline = optuna.create_study(storage=storage, study_name=config.study_name("baseline"))
    done = baseline.ask()
    done.set_user_attr(keys.RUNS, [_run(2, 100.0, 50.0)])
    baseline.tell(done, 1.0)
    failed = baseline.ask()  # 2 epochs recorded, no run stored
    failed.set_user_attr(keys.SEED_CURVES, [[0, [1.2, 1.1]]])
    baseline.tell(failed, state=optuna.trial.TrialState.FAIL)
    rates = optuna.create_study(storage=storage, study_name=config.study_name("learning_rate"))
    raced = rates.ask()
    raced.set_user_attr(keys.RACE_OF, 0)
    raced.set_user_attr(keys.RUNS, [_run(3, 60.0, 50.0)])
    rates.tell(raced, 1.0)
    rates.ask()  # running: not trained yet
    probe = rates.ask()  # a probe in the same phase (the batch phase's, in a run)
    probe.set_user_attr(keys.RATE_PROBE, "the rate re-tuned")
    probe.set_user_attr(keys.RUNS, [_run(2, 60.0, 50.0)])
    rates.tell(probe, 1.0)
    rest = {"racing": 0, "spare": 0, "rate_probes": 0}
    assert trained_by_phase(config, storage) == {
        "baseline": {"seed_epochs": 4, **rest},
        "learning_rate": {"seed_epochs": 5, **rest, "racing": 3, "rate_probes": 2},
    }
    assert trained_so_far(config, storage)["seed_epochs"] == 9
