"""SIGINT and SIGTERM in the middle of an epoch: the trial ends FAIL marked interrupted, its
last epoch checkpoint is complete and loads, the process exits within 30 s with 128 + signal,
and the next `hptune run` runs the trial again (without using up a retry) and finishes."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from hptune import keys


def _config(tmp_path: Path, **changes) -> Path:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["phases"] = {"run": ["baseline"]}
    raw["training"].update(epochs=3, max_train_examples=320)  # epochs long enough to hit
    raw["max_retries"] = 0  # an interruption must not count as a failure
    raw.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _wait_for(pattern: str, root: Path, process: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError(f"no {pattern} under {root} within {timeout} s")


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_epoch_interrupts_cleanly_and_the_next_run_goes_on(
    demo_path, tmp_path, signal_number
) -> None:
    from safetensors.torch import load_file

    config = _config(tmp_path)
    output = tmp_path / "out"
    command = [sys.executable, "-m", "hptune", "run", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the first epoch's checkpoint is written: the second epoch is training now
    first = _wait_for("checkpoints/*/trial-0/seed-0/epoch-1", output, process)
    sent = time.monotonic()
    process.send_signal(signal_number)
    _, err = process.communicate(timeout=60)
    assert time.monotonic() - sent < 30
    assert process.returncode == 128 + signal_number, err
    name = signal.Signals(signal_number).name
    assert f"interrupted by {name}" in err and "Traceback" not in err

    storage = f"sqlite:///{output / 'hptune.db'}"
    study = optuna.load_study(study_name="tiny.baseline", storage=storage)
    [trial] = study.get_trials()
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["status"] == "interrupted"
    assert trial.user_attrs["interrupted_by"] == name
    # the last checkpoint is whole: its safetensors load and hold the adapter
    kept = sorted(first.parent.glob("epoch-*"))
    assert kept and not list(first.parent.glob(".epoch-*"))
    weights = load_file(kept[-1] / "adapter_model.safetensors")
    assert weights and all("lora" in key for key in weights)

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params
    assert trials[1].system_attrs["hptune.retry_of"] == 0
    assert "hptune.decision" in study.user_attrs
    # once decided, the interrupted trial's checkpoints are removed; the retry keeps its own
    assert not first.parent.parent.exists()
    retry_dir = first.parent.parent.with_name("trial-1") / "seed-0"
    kept = sorted(p.name for p in retry_dir.iterdir())
    assert kept[-1] == "epoch-3" and len(kept) <= 2  # the last, and the best if another
    # the retry went on from the interrupted seed's last checkpoint, not from scratch
    assert trials[1].user_attrs["runs"][0]["resumed_after"] >= 1


@pytest.mark.slow
def test_kill_9_mid_trial_then_restart_resumes_the_trial(demo_path, tmp_path) -> None:
    # a kill is a failure
    config = _config(tmp_path, heartbeat_seconds=2, stale_seconds=4, max_retries=1)
    output = tmp_path / "out"
    command = [sys.executable, "-m", "hptune", "run", str(config)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for("checkpoints/*/trial-0/seed-0/epoch-2", output, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    storage = f"sqlite:///{output / 'hptune.db'}"
    study = optuna.load_study(study_name="tiny.baseline", storage=storage)
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]  # as the kill left it

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]  # nothing stays RUNNING
    assert study.user_attrs[keys.STALE_TRIALS] == [0]
    assert trials[1].params == trials[0].params
    assert trials[1].system_attrs["hptune.retry_of"] == 0
    runs = trials[1].user_attrs["runs"]
    assert runs[0]["resumed_after"] >= 2  # seed 0 went on after its epoch-2 checkpoint
    assert runs[1]["resumed_after"] == 0  # seed 1 had not started
    assert [len(r["epochs"]) for r in runs] == [3, 3]
