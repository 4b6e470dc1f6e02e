"""The real training stack (transformers + peft + accelerate + sacrebleu) on the demo model."""

import math

import pytest
import torch

from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.train import Runner


@pytest.fixture(scope="module")
def runner(demo_path, tmp_path_factory) -> Runner:
    config = config_from_dict({
        "model": {"path": "demo://model"},
        "method": {"type": "lora", "target_modules": "all-linear"},
        "data": {"train": "demo://data/train.jsonl", "validation": "demo://data/validation.jsonl",
                 "test": "demo://data/test.jsonl", "template": "Question: {question}\nAnswer: "},
        "objective": {"metric": "chrf", "eval_samples": 8, "max_new_tokens": 8},
        "training": {"max_train_examples": 64},
        "output_dir": str(tmp_path_factory.mktemp("out")),
    })  # fmt: skip
    return Runner(config)


HP = HParams(learning_rate=5e-3, batch_size=16, gradient_accumulation_steps=1, epochs=2,
             warmup_ratio=0.1, weight_decay=0.01)  # fmt: skip


def test_labels_cover_the_response_only(runner: Runner) -> None:
    example = runner.data.train[0]
    labels = example["labels"]
    first = next(i for i, label in enumerate(labels) if label != -100)
    response = runner.tokenizer.decode(labels[first:], skip_special_tokens=True)
    assert response.startswith("The ")
    assert first > 5  # the prompt is masked
    assert runner.data.fingerprints["validation"] != runner.data.fingerprints["test"]


def test_lora_run_learns_and_is_reproducible(runner: Runner) -> None:
    seen = []
    first = runner.train(HP, seed=0, on_epoch=lambda seed, m: seen.append((seed, m.epoch)))
    assert seen == [(0, 1), (0, 2)]
    assert not first.diverged
    losses = [e.eval_loss for e in first.epochs]
    assert losses[1] < losses[0]
    assert all(e.score is not None and 0 <= e.score <= 100 for e in first.epochs)
    assert len(runner.data.validation_prompts) == 8  # the seeded subset text metrics score
    assert first.examples_per_second > 0 and first.tokens_per_second > 0
    again = runner.train(HP, seed=0)
    assert [e.eval_loss for e in again.epochs] == pytest.approx(losses, rel=1e-6)
    other_seed = runner.train(HP, seed=1)
    assert [e.eval_loss for e in other_seed.epochs] != pytest.approx(losses, rel=1e-6)


def test_gradient_accumulation_and_full_fine_tuning(runner: Runner) -> None:
    accumulated = runner.train(HP.replace(batch_size=8, gradient_accumulation_steps=2, epochs=1), 0)
    assert math.isfinite(accumulated.epochs[0].eval_loss)
    full = Runner.__new__(Runner)
    full.__dict__.update(runner.__dict__)
    full.config = runner.config.model_copy(
        update={"method": runner.config.method.model_copy(update={"type": "full"})}
    )
    result = full.train(HP.replace(learning_rate=1e-3, epochs=1), 0)
    assert math.isfinite(result.epochs[0].eval_loss)


def test_non_finite_loss_stops_the_run_at_once(runner: Runner) -> None:
    # A step this large overflows the weights: the next loss is not finite.
    result = runner.train(HP.replace(learning_rate=1e30, max_grad_norm=None, warmup_ratio=0.0), 0)
    assert result.diverged
    assert result.diverged_at is not None and result.diverged_at.startswith("epoch 1, step")
    assert result.epochs == []  # stopped inside the first epoch, before any evaluation


def test_lora_runs_reuse_one_base_model_and_train_exactly_as_a_fresh_load(
    runner: Runner, monkeypatch
) -> None:
    import hptune.train.runner as loop

    loads = []
    original = loop.load_base_model
    monkeypatch.setattr(loop, "load_base_model", lambda *a: loads.append(1) or original(*a))
    fresh = Runner(runner.config)
    first = fresh.train(HP.replace(epochs=1), seed=3)
    base_before = {k: v.clone() for k, v in fresh._base.state_dict().items()}
    second = fresh.train(HP.replace(epochs=1), seed=3)  # the same base, a new adapter
    assert len(loads) == 1  # loaded once for both runs
    # Where the loss starts is measured once: every run starts from the pretrained function
    # (a new adapter adds exactly zero); another runner, another seed, measures the same.
    other = Runner(runner.config).train(HP.replace(epochs=1), seed=5)
    assert first.initial_eval_loss == second.initial_eval_loss == other.initial_eval_loss
    assert [e.eval_loss for e in second.epochs] == [e.eval_loss for e in first.epochs]
    after = fresh._base.state_dict()
    assert after.keys() == base_before.keys()  # no adapter left in it
    assert all(torch.equal(after[k], v) for k, v in base_before.items())  # weights untouched


def test_a_text_metric_run_keeps_the_best_and_last_checkpoint(runner: Runner) -> None:
    """Checkpoints are chosen by the metric under its stored key ("score" for chrF)."""
    import json
    from pathlib import Path

    result = runner.train(HP.replace(epochs=3), seed=0, run_name="kept/trial-0")
    run_dir = Path(runner.config.output_dir) / "checkpoints" / "kept" / "trial-0" / "seed-0"
    kept = sorted(p.name for p in run_dir.glob("epoch-*"))
    scores = [e.score for e in result.epochs]
    assert "epoch-3" in kept and len(kept) <= 2  # the last, and the best if another
    assert all(scores[int(k[-1]) - 1] == max(scores) for k in kept if k != "epoch-3")
    assert json.loads((run_dir / "epoch-3" / "metrics.json").read_text())["score"] == scores[2]


def test_a_run_stopped_inside_an_accumulation_window_before_does_not_stop_this_one_learning(
    runner: Runner,
) -> None:
    # Accelerate's GradientState is one per process: a Trainer run that diverged between the
    # batches of a window leaves it "not syncing", which made this loop skip every step.
    from accelerate.state import GradientState

    GradientState().sync_gradients = False
    result = runner.train(HP.replace(epochs=1), seed=0)
    assert result.epochs[0].eval_loss < result.initial_eval_loss - 0.01
