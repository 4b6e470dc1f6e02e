"""Diagnoses of crafted curves: each class, its evidence and the guide's remedy."""

import math

import optuna
import pytest

from hptune.diagnose import Diagnosis, diagnose, diagnose_curves, diagnose_trial
from hptune.hparams import HParams

HP = HParams(
    learning_rate=1e-4,
    batch_size=8,
    gradient_accumulation_steps=2,
    epochs=4,
    warmup_ratio=0.05,
    weight_decay=0.01,
    max_grad_norm=None,
)


def test_nan_is_diverged_with_lr_cut_and_clipping() -> None:
    d = diagnose_curves([2.0, math.nan], [1.9, math.nan], hparams=HP)
    assert d.kind == "diverged"
    assert "epoch 2 (training)" in d.evidence
    assert d.remedy == {
        "training.learning_rate": pytest.approx(1e-5),
        "training.max_grad_norm": 1.0,
    }
    assert "training.learning_rate 0.0001 -> 1e-05" in d.remedy_text


def test_exploding_loss_is_diverged() -> None:
    d = diagnose_curves([2.0, 2.5, 4.0], [1.9, 2.4, 3.9], hparams=HP.replace(max_grad_norm=1.0))
    assert d.kind == "diverged"
    assert "rose from 2 (epoch 1) to 4 (epoch 3)" in d.evidence
    assert d.remedy == {"training.learning_rate": pytest.approx(1e-5)}  # clipping already on


def test_a_loss_far_above_where_it_started_is_diverged() -> None:
    # epoch by epoch it falls, but it started at 2.0 before training
    d = diagnose_curves([30.0, 12.0], [27.0, 9.0], hparams=HP, initial_eval_loss=2.0)
    assert d.kind == "diverged"
    assert "rose from 2 before training to 27 (epoch 1)" in d.evidence


def test_validation_past_1_5x_its_start_while_training_falls_is_overfitting() -> None:
    # validation ends 1.6x its epoch-1 value, but training kept falling: not a divergence
    d = diagnose_curves([2.0, 1.5, 1.0, 0.6], [2.0, 2.2, 2.6, 3.2], hparams=HP, dropout=0.05)
    assert d.kind == "overfitting"
    assert d.remedy["training.epochs"] == 1
    # the same against the loss measured before training
    d = diagnose_curves([2.0, 1.0, 0.5], [2.0, 2.8, 3.4], hparams=HP, initial_eval_loss=2.1)
    assert d.kind == "overfitting"


def test_validation_worse_than_before_training_throughout_is_a_too_high_rate() -> None:
    # 3.49 before training, 4.2 and 4.39 after: the rate is too high, not too low
    d = diagnose_curves([3.5, 3.45], [4.2, 4.39], hparams=HP, initial_eval_loss=3.49)
    assert d.kind == "diverged"
    assert "never came back to its 3.49 before training" in d.evidence
    assert d.remedy["training.learning_rate"] == pytest.approx(1e-5)  # a tenth, not 3x


def test_no_gain_from_the_start_is_not_learning() -> None:
    d = diagnose_curves([2.99], [2.98], hparams=HP, initial_eval_loss=3.0)
    assert d.kind == "not_learning"
    assert "3 (before training)" in d.evidence


def test_flat_loss_is_not_learning_with_higher_lr_and_more_epochs() -> None:
    d = diagnose_curves([3.00, 2.99, 2.98, 2.98], [2.90, 2.89, 2.89, 2.88], hparams=HP)
    assert d.kind == "not_learning"
    assert d.remedy == {"training.learning_rate": pytest.approx(3e-4), "training.epochs": 5}


def test_rising_validation_with_falling_training_is_overfitting() -> None:
    d = diagnose_curves([2.0, 1.5, 1.0, 0.6], [1.9, 1.6, 1.7, 1.9], hparams=HP, dropout=0.05)
    assert d.kind == "overfitting"
    assert "lowest at epoch 2 (1.6)" in d.evidence
    assert d.remedy == {"training.epochs": 2, "training.weight_decay": 0.03, "method.dropout": 0.1}


def test_a_falling_validation_curve_is_healthy() -> None:
    d = diagnose_curves([2.0, 1.5, 1.2], [1.9, 1.5, 1.3], hparams=HP)
    assert d.kind == "healthy" and d.remedy == {}
    assert str(d).startswith("healthy: validation loss 1.9 -> 1.3")


def test_small_noise_after_the_minimum_is_not_overfitting() -> None:
    assert diagnose_curves([2.0, 1.5, 1.2], [1.9, 1.50, 1.51], hparams=HP).kind == "healthy"


def test_out_of_memory_trial_halves_the_batch() -> None:
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        user_attrs={
            "status": "oom",
            "hparams": HP.to_dict(),
            "oom": {"batch_size": 8, "message": "CUDA out of memory"},
        },
    )
    (d,) = diagnose_trial(trial)
    assert d.kind == "out_of_memory"
    assert d.remedy == {"training.batch_size": 4, "training.gradient_accumulation_steps": 4}


def test_a_trial_is_diagnosed_per_seed_and_a_study_per_trial() -> None:
    runs = [
        {
            "seed": 0,
            "diverged": False,
            "epochs": [
                {"train_loss": 2.0, "eval_loss": 1.9},
                {"train_loss": 1.5, "eval_loss": 1.5},
            ],
        },
        {
            "seed": 1,
            "diverged": True,
            "diverged_at": "epoch 2, step 7",
            "epochs": [{"train_loss": 2.0, "eval_loss": 1.9}],
        },
    ]
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(value=1.5, user_attrs={"runs": runs, "hparams": HP.to_dict()})
    )
    by_trial = diagnose(study)
    assert [d.kind for d in by_trial[0]] == ["healthy", "diverged"]
    assert by_trial[0][1].seed == 1 and "epoch 2, step 7" in by_trial[0][1].evidence
    (raw,) = diagnose({"train_loss": [3.0, 3.0], "eval_loss": [2.9, 2.9]}, hparams=HP)
    assert isinstance(raw, Diagnosis) and raw.kind == "not_learning"
    with pytest.raises(TypeError, match="cannot diagnose"):
        diagnose(42)


def test_a_training_loss_that_was_not_reported_is_not_a_divergence() -> None:
    # a user's train_fn may report validation only: its training curve is NaN, its run
    # did not stop; a real non-finite training loss stops the run (diverged_at)
    nan = math.nan
    found = diagnose_curves([nan, nan, nan], [2.5, 2.2, 2.1], initial_eval_loss=3.0)
    assert found.kind == "healthy"
    stopped = diagnose_curves([2.0, nan], [2.5, nan], diverged_at="epoch 2, step 3 (loss nan)")
    assert stopped.kind == "diverged"
