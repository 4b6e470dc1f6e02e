"""Packing (TRL's SFTConfig ``packing``, backend sft): TRL packs the examples into rows;
hptune's validation stays per example, throughput and the budget count examples, and the
memory model plans for rows of data.max_length."""

from __future__ import annotations

import pytest

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.train import make_runner

HP = HParams(learning_rate=5e-3, batch_size=4, gradient_accumulation_steps=1, epochs=1,
             warmup_ratio=0.0, weight_decay=0.0)  # fmt: skip


def _config(tiny_config_dict, **training):
    tiny_config_dict["training"].update(backend="sft", checkpoints=False, **training)
    return config_from_dict(tiny_config_dict)


def test_packed_training_counts_examples_not_rows_and_validates_per_example(
    tiny_config_dict,
) -> None:
    packed = make_runner(_config(tiny_config_dict, args={"packing": True})).train(HP, 0)
    plain = make_runner(_config(tiny_config_dict, args={})).train(HP, 0)
    assert packed.train_examples == plain.train_examples == 96  # one epoch of 96 examples
    assert packed.train_tokens == pytest.approx(plain.train_tokens, rel=0.05)
    # the same validation examples, measured the same way: packing changes the training only
    assert packed.epochs[0].eval_loss != plain.epochs[0].eval_loss
    assert abs(packed.epochs[0].eval_loss - plain.epochs[0].eval_loss) < 1.0


def test_the_memory_model_plans_packed_rows_of_the_full_length(tiny_config_dict) -> None:
    from hptune.train.target import memory_model

    config = _config(tiny_config_dict, args={"packing": True})
    runner = make_runner(config)
    assert memory_model(config, runner).sequence_length == config.data.max_length == 96
    unpacked = _config(tiny_config_dict, args={})
    assert memory_model(unpacked, make_runner(unpacked)).sequence_length < 96


def test_packing_outside_the_sft_backend_names_it(tiny_config_dict) -> None:
    tiny_config_dict["training"].update(backend="trainer", args={"packing": True})
    with pytest.raises(ConfigError, match="'packing' is a key of TRL's SFTConfig.*backend: sft"):
        config_from_dict(tiny_config_dict)


def test_packing_searched_by_a_phase_is_counted_and_planned_as_packing(tiny_config_dict) -> None:
    from hptune.train.target import memory_model

    space = {"packing": [True, False]}
    tiny_config_dict["phases"] = {"run": ["regularization"], "regularization": {"space": space}}
    config = _config(tiny_config_dict, args={})
    runner = make_runner(config)
    packed = runner.train(HP.replace(args={"packing": True}), 0)
    assert packed.train_examples == 96  # examples, not the packed rows
    assert memory_model(config, runner).sequence_length == config.data.max_length
