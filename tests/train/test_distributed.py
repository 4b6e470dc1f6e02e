"""Data-parallel trials on CPU, 2 processes over gloo: process 0 alone talks to the storage,
the others train the same run in lockstep and stop when it says so."""

import json
import socket
import subprocess
import sys

import optuna
import pytest
import yaml

from tests.conftest import tiny_config


def _config(tmp_path):
    raw = tiny_config(tmp_path)
    raw["phases"] = {
        "run": ["learning_rate"],
        "learning_rate": {"grid": [1e-3, 5e-3], "extend_edges": 0},
    }
    raw["objective"]["seeds"] = 1
    raw["training"]["epochs"] = 2
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, raw


def _free_port() -> str:
    # Port 0 would let each process pick its own and never meet: choose one for all.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", _free_port(), *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("fault", ["none", "nan"])
def test_processes_stop_together_on_process_0_s_word(demo_path, tmp_path, fault) -> None:
    config, _ = _config(tmp_path)
    script = "tests/train/ddp_script.py"
    done = _torchrun(script, str(config), str(tmp_path), fault)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["processes"] for r in ranks] == [2, 2]
    if fault == "none":  # process 0's callback stopped after epoch 2 of 4; so did process 1
        assert [len(r["epochs"]) for r in ranks] == [2, 2]
        assert [r["stopped_early"] for r in ranks] == [True, True]
        # Both measured the same validation loss: the weights stayed in sync.
        assert ranks[0]["epochs"][-1]["eval_loss"] == ranks[1]["epochs"][-1]["eval_loss"]
    else:  # a NaN on process 1 alone: the mean loss is NaN on both, both stop at that step
        assert [r["diverged"] for r in ranks] == [True, True]
        assert ranks[0]["diverged_at"] == ranks[1]["diverged_at"]
        assert ranks[0]["diverged_at"].startswith("epoch 2, step 1")


def test_accelerate_launch_runs_the_pipeline_data_parallel(demo_path, tmp_path) -> None:
    config, _ = _config(tmp_path)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", _free_port(), "-m", "hptune", "run",
               str(config)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("decision (") == 1  # one pipeline, printed by process 0
    storage = f"sqlite:///{tmp_path / 'out' / 'hptune.db'}"
    study = optuna.load_study(study_name="tiny.learning_rate", storage=storage)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert len({t.user_attrs["worker"] for t in trials}) == 1  # only process 0 used the storage
    assert all(run["processes"] == 2 for t in trials for run in t.user_attrs["runs"])
    assert study.user_attrs["hptune.setup"]["processes"] == 2
