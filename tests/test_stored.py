"""The one reader of stored trials, on a real study's trials in every state."""

import optuna
import pytest

from hptune import keys, stored


def _study_with_every_state() -> tuple[optuna.Study, dict[str, optuna.trial.FrozenTrial]]:
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    study.enqueue_trial({"x": 0.0})
    complete = study.ask()
    study.tell(complete, 1.0)
    pruned = study.ask()
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    study.ask()  # running
    study.enqueue_trial({"x": 1.0})  # waiting
    names = ["complete", "pruned", "fail", "running", "waiting"]
    return study, dict(zip(names, study.get_trials(deepcopy=False), strict=True))


def test_states_and_ids_are_read_from_real_trials() -> None:
    study, by_state = _study_with_every_state()
    for name, trial in by_state.items():
        assert stored.state_of(trial) == name
        # the id is the one the storage API takes
        assert study._storage.get_trial(stored.trial_id(trial)).number == trial.number
    assert [n for n, t in by_state.items() if stored.is_scored(t)] == ["complete", "pruned"]
    assert [n for n, t in by_state.items() if stored.is_pending(t)] == ["running", "waiting"]
    assert [n for n, t in by_state.items() if stored.is_failed(t)] == ["fail"]
    assert [n for n, t in by_state.items() if stored.is_running(t)] == ["running"]
    assert stored.count_states(by_state.values()) == dict.fromkeys(by_state, 1)


def test_a_live_trial_and_its_frozen_copy_have_one_id() -> None:
    study = optuna.create_study()
    study.ask()
    live = study.ask()
    assert stored.trial_id(live) == stored.trial_id(study.get_trials()[1])


def test_a_stored_run_counts_gpu_seconds_and_examples_over_its_processes() -> None:
    study = optuna.create_study()
    trial = study.ask()
    run = {"seed": 3, "epochs": [{}, {}, {}], "resumed_after": 1, "seconds": 10.0,
           "examples_per_second": 80.0, "processes": 2}  # fmt: skip
    trial.set_user_attr(keys.RUNS, [run])
    trial.set_user_attr(keys.SEED_CURVES, [[3, [1.0, 0.9, 0.8]]])
    view = stored.StoredTrial(study.get_trials()[0])
    (read,) = view.runs or []
    assert (read.seed, read.trained_epochs) == (3, 2)
    assert read.gpu_seconds == pytest.approx(20.0)
    assert read.examples == pytest.approx(800.0)  # over both processes
    assert view.unstored_epochs == 0 and not view.reused and view.state == "running"


def test_unstored_epochs_count_epochs_not_looks_within_them() -> None:
    # A trial that failed in seed 1 with looks (2 positions per epoch): seed 0's run is
    # stored; seed 1 recorded 3 positions, that is 1 epoch and one begun (counted whole).
    curves = [[0, [3.0, 2.8, 2.5, 2.2]], [1, [3.1, 2.9, 2.6]]]
    runs = [{"seed": 0, "epochs": [], "seconds": 1.0}]
    attrs = {keys.SEED_CURVES: curves, keys.RUNS: runs, keys.LOOKS_PER_EPOCH: 2}
    trial = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs)
    assert stored.StoredTrial(trial).unstored_epochs == 2
    del attrs[keys.LOOKS_PER_EPOCH]  # per-epoch curves: each position an epoch
    plain = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs)
    assert stored.StoredTrial(plain).unstored_epochs == 3
