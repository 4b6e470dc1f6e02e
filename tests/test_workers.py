"""Several `hptune run` processes on one storage: each queued trial runs once, every worker
takes the same decision, a killed worker's trial is retried, and SQLite stays single-worker.
The PostgreSQL tests run against a real server started on loopback (tests/postgres.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from hptune import keys
from tests.postgres import PASSWORD

GRID = [1e-4, 1e-3, 5e-3, 1e-2]


def _config_file(tmp_path: Path, storage: str | None, name: str = "tiny", **changes) -> Path:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["name"] = name
    raw["phases"] = {"run": ["learning_rate"], "learning_rate": {"grid": GRID, "extend_edges": 0}}
    raw["heartbeat_seconds"], raw["stale_seconds"] = 3, 6  # loaded machines beat late
    if storage is not None:
        raw["storage"] = storage
    raw.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _start(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hptune", "run", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _finish(workers: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=900)
        results.append((worker.returncode, out, err))
    return results


def _decision_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("decision (")]


def _check_each_grid_point_ran_once(storage: str, name: str = "tiny") -> optuna.Study:
    study = optuna.load_study(study_name=f"{name}.learning_rate", storage=_open(storage))
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * len(GRID)
    assert sorted(t.params["learning_rate"] for t in trials) == GRID
    return study


def _open(storage: str):
    from hptune.storage import driver_url

    if storage.startswith("journal://"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(
            JournalFileBackend(storage.removeprefix("journal://"))
        )
    return driver_url(storage)


def _one_worker_decision(tmp_path: Path) -> str:
    alone = tmp_path / "alone"
    alone.mkdir()
    (code, out, err) = _finish([_start(_config_file(alone, None))])[0]
    assert code == 0, err
    return _decision_lines(out)[0]


def test_three_workers_on_postgresql_share_the_grid(demo_path, postgres_url, tmp_path) -> None:
    config = _config_file(tmp_path, postgres_url)
    results = _finish([_start(config) for _ in range(3)])
    for code, _, err in results:
        assert code == 0, err
    study = _check_each_grid_point_ran_once(postgres_url)
    workers = {t.user_attrs["worker"] for t in study.get_trials()}
    assert len(workers) >= 2  # the grid was spread over the processes
    # Every worker moved on with the same decision, the one a single worker takes.
    decisions = [_decision_lines(out) for _, out, _ in results]
    assert all(d == decisions[0] for d in decisions) and len(decisions[0]) == 1
    assert decisions[0][0] == _one_worker_decision(tmp_path)
    # The password never shows: not in any output, nor in the storage's attributes.
    for _, out, err in results:
        assert PASSWORD not in out + err
    attrs = [study.user_attrs] + [t.user_attrs | t.system_attrs for t in study.get_trials()]
    assert PASSWORD not in json.dumps(attrs, default=str)
    from hptune.config import load_config
    from hptune.report import write_report

    for path in write_report(load_config(config)):  # the report names the storage, masked
        text = path.read_text()
        assert "postgresql://hptune:***@127.0.0.1" in text and PASSWORD not in text


def test_a_killed_worker_s_trial_is_retried_by_the_others(
    demo_path, postgres_url, tmp_path
) -> None:
    config = _config_file(tmp_path, postgres_url)
    config_raw = yaml.safe_load(config.read_text())
    config_raw["phases"]["run"] = ["baseline", "learning_rate"]
    config.write_text(yaml.safe_dump(config_raw))
    workers = [_start(config) for _ in range(3)]
    victim = workers[0]
    killed = _wait_for_a_running_trial_of(victim.pid, postgres_url)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    for code, _, err in _finish(workers[1:]):
        assert code == 0, err
    study_name, number = killed
    study = optuna.load_study(study_name=study_name, storage=_open(postgres_url))
    trials = study.get_trials()
    dead = trials[number]
    assert dead.state.name == "FAIL" and number in study.user_attrs[keys.STALE_TRIALS]
    retry = [t for t in trials if t.system_attrs.get("hptune.retry_of") == number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert retry[0].params == dead.params
    for name in ("tiny.baseline", "tiny.learning_rate"):
        phase_study = optuna.load_study(study_name=name, storage=_open(postgres_url))
        assert not {t.state.name for t in phase_study.trials} & {"RUNNING", "WAITING"}
        assert "hptune.decision" in phase_study.user_attrs


def _wait_for_a_running_trial_of(pid: int, storage: str) -> tuple[str, int]:
    """A trial the worker ``pid`` is running, with the worker stopped (SIGSTOP) while it still
    runs it: on a loaded machine the trial could otherwise end between the look and the kill."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            summaries = optuna.get_all_study_summaries(_open(storage))
        except Exception:
            summaries = []
        for summary in summaries:
            study = optuna.load_study(study_name=summary.study_name, storage=_open(storage))
            for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                if t.user_attrs.get("worker", "").endswith(f":{pid}") and t.params:
                    os.kill(pid, signal.SIGSTOP)
                    if study.get_trials()[t.number].state == optuna.trial.TrialState.RUNNING:
                        return summary.study_name, t.number
                    os.kill(pid, signal.SIGCONT)  # it ended meanwhile: wait for its next one
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} never ran a trial")


def test_two_workers_on_a_journal_file(demo_path, tmp_path) -> None:
    storage = f"journal://{tmp_path / 'run.log'}"
    config = _config_file(tmp_path, storage)
    for code, _, err in _finish([_start(config) for _ in range(2)]):
        assert code == 0, err
    _check_each_grid_point_ran_once(storage)


def test_a_second_worker_on_sqlite_is_refused(demo_path, tmp_path) -> None:
    from hptune.config import load_config
    from hptune.storage import single_worker_guard

    config = _config_file(tmp_path, None)
    with single_worker_guard(load_config(config)):  # as a running worker holds it
        code, _, err = _finish([_start(config)])[0]
    assert code == 2
    assert "SQLite is for one worker at a time" in err and "Traceback" not in err
    study_names = optuna.get_all_study_summaries(load_config(config).storage_url)
    assert study_names == []  # the refused worker wrote nothing


def test_a_bad_password_is_a_clear_error_that_never_shows_it(
    demo_path, postgres_url, tmp_path
) -> None:
    wrong = postgres_url.replace(PASSWORD, "Wr0ng-" + PASSWORD)
    code, out, err = _finish([_start(_config_file(tmp_path, wrong))])[0]
    assert code == 2
    assert "cannot open storage 'postgresql://hptune:***@127.0.0.1" in err
    assert PASSWORD not in out + err and "Traceback" not in err


def test_a_password_given_as_a_query_parameter_never_shows(
    demo_path, postgres_url, tmp_path
) -> None:
    """`?password=` instead of `user:pw@`: no command output, error, stored attribute, report,
    log or other file the run writes holds it."""
    assert f"hptune:{PASSWORD}@" in postgres_url
    query_url = postgres_url.replace(f"hptune:{PASSWORD}@", "hptune@") + f"?password={PASSWORD}"
    phases = {"run": ["learning_rate"], "learning_rate": {"grid": [1e-3, 5e-3], "extend_edges": 0}}
    config = _config_file(tmp_path, query_url, phases=phases)
    outputs = []
    for command in (["run"], ["status"], ["export"], ["diagnose"], ["report"], ["plan"]):
        done = subprocess.run([sys.executable, "-m", "hptune", *command, str(config)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
        outputs.append(done.stdout + done.stderr)
    assert any("password=***" in out for out in outputs)  # the storage is named, masked
    wrong = _config_file(tmp_path, query_url.replace(PASSWORD, "Wr0ng-" + PASSWORD), name="bad")
    done = subprocess.run([sys.executable, "-m", "hptune", "run", str(wrong)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    outputs.append(done.stdout + done.stderr)
    for out in outputs:
        assert PASSWORD not in out
    study = optuna.load_study(study_name="tiny.learning_rate", storage=_open(postgres_url))
    attrs = [study.user_attrs] + [t.user_attrs | t.system_attrs for t in study.get_trials()]
    assert len(attrs) == 3 and PASSWORD not in json.dumps(attrs, default=str)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in written)
    for path in written:
        assert PASSWORD.encode() not in path.read_bytes(), path


def _start_skewed(config: Path, skew_seconds: float) -> subprocess.Popen:
    """A worker whose clock (``time.time``, what its heartbeats carry) is off by ``skew``."""
    code = (
        "import sys, time\n"
        f"real = time.time\ntime.time = lambda: real() + {skew_seconds}\n"
        "from hptune.cli import main\nsys.exit(main(['run', sys.argv[1]]))\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _study(storage: str) -> optuna.Study:
    return optuna.load_study(study_name="skew.baseline", storage=_open(storage))


def _one_trial(storage: str) -> optuna.trial.FrozenTrial:
    """The baseline's first trial (a retry of it comes after)."""
    return _study(storage).get_trials()[0]


def _wait_for_the_baseline_of(pid: int, storage: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            trial = _one_trial(storage)
        except (KeyError, IndexError, optuna.exceptions.StorageInternalError):
            trial = None  # the study or its trial is not there yet
        if trial is not None and trial.user_attrs.get("worker", "").endswith(f":{pid}"):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} never ran the baseline")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "journal"])
@pytest.mark.parametrize("runner_skew", [-300, 300])
def test_clocks_minutes_apart_judge_heartbeats_alike(
    demo_path, tmp_path, request, backend, runner_skew
) -> None:
    """One worker trains the only trial with its clock 5 minutes off; another, 5 minutes off
    the other way, waits for it: the live trial is never failed, and once the first worker
    is SIGKILLed its trial is failed within 2 heartbeats (and a poll) of real time."""
    storage = (request.getfixturevalue("postgres_url") if backend == "postgresql"
               else f"journal://{tmp_path / 'run.log'}")  # fmt: skip
    heartbeat = 2
    config = _config_file(tmp_path, storage, name="skew", heartbeat_seconds=heartbeat,
                          stale_seconds=2 * heartbeat)  # fmt: skip
    raw = yaml.safe_load(config.read_text())
    raw["phases"] = {"run": ["baseline"]}
    raw["training"].update(max_train_examples=1000, epochs=4, checkpoints=False)
    config.write_text(yaml.safe_dump(raw))
    runner = _start_skewed(config, runner_skew)
    checker: subprocess.Popen | None = None
    try:
        _wait_for_the_baseline_of(runner.pid, storage)
        checker = _start_skewed(config, -runner_skew)
        time.sleep(15)  # the checker starts, finds the trial running and watches it
        live = _one_trial(storage)
        assert live.state.name == "RUNNING" and keys.STALE_TRIALS not in _study(storage).user_attrs
        assert checker.poll() is None
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        killed = time.monotonic()
        while _one_trial(storage).state.name == "RUNNING":
            assert time.monotonic() - killed < 60, "the dead worker's trial was never failed"
            time.sleep(0.1)
        recovered = time.monotonic() - killed
        print(f"{backend}, runner {runner_skew:+d} s: failed {recovered:.2f} s after the kill")
        dead = _one_trial(storage)
        # The failing worker lists the trial on the study after failing it (a trial that
        # finished meanwhile is never listed): the list follows the state by a write.
        while keys.STALE_TRIALS not in _study(storage).user_attrs:
            assert time.monotonic() - killed < 60, "the failed trial was never listed as stale"
            time.sleep(0.1)
        assert dead.state.name == "FAIL" and _study(storage).user_attrs[keys.STALE_TRIALS] == [0]
        # its last beat was at most one interval before the kill; then stale_seconds (2
        # intervals here) still, and the checker looks once a second; on a loaded machine
        # (tests side by side) its poll and reads add seconds. A clock read across the two
        # workers would be 300 s off, early (the live trial failed above) or late.
        assert recovered <= 2 * heartbeat + 1 + 6, recovered
    finally:
        for worker in (runner, checker):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
