"""Checkpoints: whole or absent under SIGKILL, bounded by retention, read only as safetensors."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from hptune.train.checkpoints import (
    CheckpointError,
    latest_checkpoint,
    load_weights,
    remove_leftovers,
    retain_best_and_last,
    save_checkpoint,
)
from tests.train.checkpoint_saver import StandIn

ROOT = Path(__file__).resolve().parents[2]


def test_retention_keeps_the_best_and_the_last_epoch(tmp_path) -> None:
    for epoch, loss in enumerate([3.0, 1.0, 2.0, 4.0, 5.0], 1):
        save_checkpoint(StandIn(epoch), tmp_path, epoch, {"eval_loss": loss})
        kept = retain_best_and_last(tmp_path, "eval_loss", "minimize")
    assert kept == [2, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-2", "epoch-5"]
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch-5"
    assert float(load_weights(tmp_path / "epoch-2")["weight"][0]) == 2.0
    assert retain_best_and_last(tmp_path, "bleu", "maximize") == []  # no such metric: kept


def _check_whole(run_dir: Path) -> int:
    """Every epoch-N left is whole: its weights load and hold N; returns the newest N."""
    epochs = []
    for path in run_dir.glob("epoch-*"):
        epoch = int(path.name.removeprefix("epoch-"))
        weights = load_weights(path)["weight"]
        assert weights.shape == (500_000,) and bool((weights == epoch).all()), path
        assert json.loads((path / "metrics.json").read_text())["eval_loss"] == epoch % 7
        epochs.append(epoch)
    newest = latest_checkpoint(run_dir)
    assert newest is not None and int(newest.name.removeprefix("epoch-")) == max(epochs)
    return max(epochs)


def test_sigkill_during_50_saves_never_leaves_a_torn_checkpoint(tmp_path) -> None:
    """A saver process is killed at a random moment, 50 times: what it leaves always holds a
    whole newest checkpoint, and a restart removes every temporary leftover."""
    rng = random.Random(0)
    leftovers_seen = 0
    newest = 0
    for _ in range(50):
        saver = subprocess.Popen([sys.executable, "-m", "tests.train.checkpoint_saver",
                                  str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE)  # fmt: skip
        assert saver.stdout is not None and saver.stdout.readline() == b"saving\n"
        time.sleep(rng.uniform(0.0, 0.15))
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        if not list(tmp_path.glob("epoch-*")):
            continue  # killed before its first save
        newest = max(newest, _check_whole(tmp_path))
        leftovers_seen += remove_leftovers(tmp_path)  # what a run does when it starts
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert newest >= 25  # the saves went on across the kills
    assert leftovers_seen >= 5  # and kills did land mid-save or mid-delete


def _pickle_bomb(path: Path, marker: Path) -> None:
    import os

    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"weight": Payload()}, path)


def test_a_pickle_payload_in_a_checkpoint_never_runs(tmp_path) -> None:
    import torch

    checkpoint = tmp_path / "epoch-1"
    checkpoint.mkdir()
    marker = tmp_path / "pwned"
    _pickle_bomb(checkpoint / "adapter_model.bin", marker)
    with pytest.raises(CheckpointError, match=r"adapter_model\.bin: pickle, refused"):
        load_weights(checkpoint)
    assert not marker.exists()
    # the other loader hptune allows, torch.load(weights_only=True), refuses it as well
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        torch.load(checkpoint / "adapter_model.bin", weights_only=True)
    assert not marker.exists()
    # beside a safetensors file, the pickle is ignored: only safetensors is read
    save_file({"weight": np.ones(3, np.float32)}, str(checkpoint / "adapter_model.safetensors"))
    assert list(load_weights(checkpoint)) == ["weight"] and not marker.exists()


def test_hptune_never_unpickles() -> None:
    """No torch.load without weights_only=True, and no pickle module, anywhere in hptune."""
    import re

    for path in (ROOT / "hptune").rglob("*.py"):
        text = path.read_text()
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
        assert not re.search(r"^\s*(import pickle|from pickle|import dill)", text, re.M), path
