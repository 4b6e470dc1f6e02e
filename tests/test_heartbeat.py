"""No false stale failures: a live trial whose epochs each take at least three heartbeat
intervals is never failed by a peer checking for stale trials, and its process never crashes.

The peer here is this test: while `hptune run` trains (heartbeat_seconds = 1), it calls
`fail_dead_trials` with the grace a worker uses (2 heartbeats) four times a second."""

import subprocess
import sys
import time

import optuna
import pytest
import sqlalchemy
import yaml

from hptune import keys
from hptune.storage import StaleWatch, fail_dead_trials


@pytest.mark.slow
def test_a_slow_live_trial_is_never_failed_as_stale(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["objective"] = {"seeds": 1, "eval_samples": 4, "max_new_tokens": 4}
    raw["training"].update(batch_size=4, epochs=2, max_train_examples=1000)
    raw["phases"] = {"run": ["baseline"]}
    raw["heartbeat_seconds"] = 1
    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump(raw))
    storage = f"sqlite:///{tmp_path / 'out' / 'hptune.db'}"
    command = [sys.executable, "-m", "hptune", "run", str(config)]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checks_while_running, failed = 0, []
    watch = StaleWatch(grace_seconds=2.0)
    while worker.poll() is None:
        time.sleep(0.25)
        if not (tmp_path / "out" / "hptune.db").exists():
            continue
        try:  # as a reading peer: never create the tables the worker is creating
            rdb = optuna.storages.RDBStorage(storage, skip_table_creation=True)
            study = optuna.load_study(study_name="tiny.baseline", storage=rdb)
        except (KeyError, optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError):
            continue  # tables or study not created yet
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        checks_while_running += bool(running)
        failed += fail_dead_trials(study, study._storage, watch)
    _, err = worker.communicate()
    assert worker.returncode == 0, err
    assert failed == [] and "failed by another worker" not in err
    [trial] = study.get_trials()
    assert trial.state.name == "COMPLETE" and keys.STALE_TRIALS not in study.user_attrs
    # the premise: each epoch took at least three heartbeat intervals, and it was watched
    [run] = trial.user_attrs["runs"]
    assert run["seconds"] / len(run["epochs"]) >= 3.0, run["seconds"]
    assert checks_while_running >= 20
