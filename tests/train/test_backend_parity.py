"""hptune's own loop trains as transformers' Trainer and TRL's SFTTrainer do: the same
per-epoch validation loss per seed, with dropout, accumulation, warmup, weight decay and a
cosine schedule on; and the parts that make it so, each checked on its own."""

from __future__ import annotations

import pytest
import yaml

from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.train import make_runner

# 96 examples: 6 steps an epoch, 18 in all; warmup 0.12 x 18 = 2.16 -> 3 steps (rounding: 2)
HP = HParams(learning_rate=5e-3, batch_size=4, gradient_accumulation_steps=4, epochs=3,
             warmup_ratio=0.12, weight_decay=0.05, scheduler="cosine")  # fmt: skip


def _config(tmp_path, backend: str, *, dropout: float = 0.05, method: str = "lora", **training):
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["method"].update(type=method, dropout=dropout)  # dropout's random state must line up
    raw["training"].update({"max_train_examples": 96, "checkpoints": False, "backend": backend})
    raw["training"].update(training)
    raw["data"]["tokenization"] = "trl"  # every backend on the tokens SFTTrainer trains
    return config_from_dict(raw)


def _curves(tmp_path, backend: str, hp: HParams = HP) -> dict[int, list[float]]:
    runner = make_runner(_config(tmp_path, backend))
    return {seed: [e.eval_loss for e in runner.train(hp, seed).epochs] for seed in (0, 1)}


@pytest.fixture(scope="module")
def accelerate_curves(demo_path, tmp_path_factory) -> dict[int, list[float]]:
    return _curves(tmp_path_factory.mktemp("accelerate"), "accelerate")


@pytest.mark.parametrize("backend", ["trainer", "sft"])
def test_the_trainer_and_the_loop_give_the_same_validation_loss_per_seed(
    accelerate_curves, tmp_path, backend
) -> None:
    curves = _curves(tmp_path, backend)
    for seed, loop in accelerate_curves.items():
        assert len(curves[seed]) == len(loop) == HP.epochs
        for ours, theirs in zip(loop, curves[seed], strict=True):
            assert abs(ours - theirs) / theirs < 1e-3, (seed, loop, curves[seed])
    # the seeds differ far more than the backends: the pairing is what is compared
    assert abs(accelerate_curves[0][-1] - accelerate_curves[1][-1]) > 1e-3


def test_batch_4_x_4_takes_the_same_step_as_batch_16_x_1(demo_path, tmp_path) -> None:
    # The step's loss is the mean over the window's target tokens, so splitting a batch into
    # accumulated ones changes nothing but float rounding (a mean of batch means would:
    # the examples' answers have different lengths).
    runner = make_runner(_config(tmp_path, "accelerate", dropout=0.0, max_train_examples=32))
    one = HParams(learning_rate=5e-3, batch_size=16, gradient_accumulation_steps=1, epochs=1,
                  warmup_ratio=0.0, weight_decay=0.0)  # fmt: skip
    split = one.replace(batch_size=4, gradient_accumulation_steps=4)
    whole = runner.train(one, seed=0).epochs[0]
    parts = runner.train(split, seed=0).epochs[0]
    assert parts.eval_loss == pytest.approx(whole.eval_loss, rel=1e-5)
    assert parts.train_loss == pytest.approx(whole.train_loss, rel=1e-5)


def test_biases_and_norm_weights_are_not_decayed(demo_path, tmp_path) -> None:
    from hptune.train.steps import build_adamw, decay_parameter_names

    runner = make_runner(_config(tmp_path, "accelerate", method="full"))  # norms train too
    model = runner.load_run_model()
    names = set(decay_parameter_names(model))
    norms = [n for n, _ in model.named_parameters() if "norm" in n]
    assert norms and not names & set(norms)
    assert any(n.endswith("proj.weight") for n in names)
    optimizer = build_adamw(model, HP, None, {})
    decayed, exempt = optimizer.param_groups
    assert decayed["weight_decay"] == HP.weight_decay and exempt["weight_decay"] == 0.0
    assert len(exempt["params"]) == len(norms)


def test_warmup_takes_the_ceiling_of_its_share_of_the_steps(demo_path, tmp_path) -> None:
    # 96 examples, batch 4 x 4: 6 steps per epoch, 12 in 2 epochs; 0.54 x 12 = 6.48 warmup
    # steps: the Trainer takes 7 (rounding would take 6, and reach the full rate at step 6)
    runner = make_runner(_config(tmp_path, "accelerate"))
    hp = HP.replace(warmup_ratio=0.54, epochs=2, scheduler="constant_with_warmup")
    rates = [e.learning_rate for e in runner.train(hp, 0).epochs]
    assert rates == [pytest.approx(hp.learning_rate * 6 / 7), pytest.approx(hp.learning_rate)]


def test_the_sft_backend_trains_chat_data_on_the_assistant_turns_as_the_loop(
    demo_path, tmp_path
) -> None:
    # data.tokenization: hptune hands SFTTrainer hptune's tokenized conversations with their
    # completion mask (every assistant turn), so chat data trains as in the loop
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    raw = yaml.safe_load((root / "examples" / "chat.yaml").read_text())
    raw["data"]["chat_template"] = str(root / "examples" / "chat_template.jinja")
    raw["data"]["tokenization"] = "hptune"
    raw["objective"] = {"metric": "eval_loss", "seeds": 1}
    raw["training"].update(max_train_examples=48, checkpoints=False)
    raw["output_dir"] = str(tmp_path / "out")
    hp = HP.replace(epochs=2, batch_size=4, gradient_accumulation_steps=2)
    curves = {}
    for backend in ("accelerate", "sft"):
        raw["training"]["backend"] = backend
        runner = make_runner(config_from_dict(raw))
        assert runner.data.format == "chat"
        curves[backend] = [e.eval_loss for e in runner.train(hp, seed=0).epochs]
    for ours, theirs in zip(curves["accelerate"], curves["sft"], strict=True):
        assert abs(ours - theirs) / ours < 1e-3, curves
