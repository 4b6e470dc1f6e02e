"""Real demo trials with forced bad settings, diagnosed from the storage with the remedy."""

import pytest

from hptune.config import config_from_dict
from hptune.pipeline import tune
from hptune.record import RunRecord


def run_baseline(tmp_path, **training) -> list:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["objective"] = {"seeds": [0], "eval_samples": 1, "max_new_tokens": 4}
    raw["phases"] = {"run": ["baseline"]}
    raw["guardrails"] = {"ignore": ["single_seed", "high_learning_rate"]}
    method = training.pop("method", None)
    if method is not None:
        raw["method"] = {"type": method}
    raw["training"].update(training)
    config = config_from_dict(raw)
    tune(config)
    return [d for _, _, d in RunRecord(config).diagnoses(phase="baseline")]


def test_learning_rate_far_too_high_diverges(demo_path, tmp_path) -> None:
    # full fine-tuning at 0.7 (the preset is 1e-5): the loss leaves its start far behind
    (d,) = run_baseline(tmp_path, method="full", learning_rate=0.7, epochs=2, checkpoints=False)
    assert d.kind == "diverged"
    # the run is stopped at the end of epoch 1, when validation is past 1.5x its start
    assert "epoch 1 (validation loss" in d.evidence and "past 1.5x its start" in d.evidence
    assert d.remedy == {"training.learning_rate": pytest.approx(0.07)}  # clipping already on


def test_learning_rate_far_too_low_does_not_learn(demo_path, tmp_path) -> None:
    (d,) = run_baseline(tmp_path, learning_rate=1e-6, epochs=3)
    assert d.kind == "not_learning"
    assert d.remedy == {"training.learning_rate": pytest.approx(3e-6), "training.epochs": 4}


def test_tiny_training_set_with_many_epochs_overfits(demo_path, tmp_path) -> None:
    (d,) = run_baseline(
        tmp_path,
        method="full",
        learning_rate=5e-3,
        epochs=25,
        batch_size=4,
        max_train_examples=16,
        early_stopping_patience=None,
        checkpoints=False,
    )
    assert d.kind == "overfitting"
    best_epoch = d.remedy["training.epochs"]
    assert 1 <= best_epoch < 25
    assert f"lowest at epoch {best_epoch}" in d.evidence
    assert d.remedy["training.weight_decay"] == 0.03
    assert "method.dropout" not in d.remedy  # no LoRA dropout in full fine-tuning
