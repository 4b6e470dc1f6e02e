"""training.args and training.optim: TrainingArguments / SFTConfig keys passed through to the
Trainer backends and the export, the few hptune's loop honours trained alike by it, and the
rest refused by name."""

from __future__ import annotations

import pytest

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.train import make_runner
from hptune.train.arguments import sft_arguments, training_arguments

HP = HParams(learning_rate=5e-3, batch_size=4, gradient_accumulation_steps=4, epochs=2,
             warmup_ratio=0.1, weight_decay=0.0, scheduler="cosine_with_min_lr")  # fmt: skip
ARGS = {"adam_beta2": 0.95, "adam_epsilon": 1e-6, "lr_scheduler_kwargs": {"min_lr_rate": 0.2}}


def _raw(tiny_config_dict, backend="accelerate", **training):
    raw = tiny_config_dict
    raw["training"].update({"max_train_examples": 96, "checkpoints": False, "backend": backend})
    raw["training"].update(training)
    raw["data"]["tokenization"] = "trl"  # every backend on the tokens SFTTrainer trains
    return raw


@pytest.fixture(scope="module")
def loop_curve(demo_path, tmp_path_factory):
    from tests.conftest import tiny_config

    raw = _raw(tiny_config(tmp_path_factory.mktemp("loop")), args=ARGS,
               scheduler="cosine_with_min_lr")  # fmt: skip
    return make_runner(config_from_dict(raw)).train(HP, 0).epochs


def test_the_loop_honours_betas_epsilon_and_scheduler_kwargs(loop_curve, tiny_config_dict):
    from hptune.train.steps import build_adamw

    # cosine down to min_lr_rate x the rate, not to 0
    assert loop_curve[-1].learning_rate == pytest.approx(0.2 * HP.learning_rate)
    import torch

    model = torch.nn.Linear(2, 2)
    group = build_adamw(model, HP, "adamw_torch", ARGS).param_groups[0]
    assert group["betas"] == (0.9, 0.95) and group["eps"] == 1e-6
    assert not group["fused"]


@pytest.mark.parametrize("backend", ["trainer", "sft"])
def test_the_trainer_backends_train_the_same_passed_through_keys_as_the_loop(
    loop_curve, tiny_config_dict, backend
) -> None:
    raw = _raw(tiny_config_dict, backend, args=ARGS, scheduler="cosine_with_min_lr")
    runs = make_runner(config_from_dict(raw)).train(HP, 0).epochs
    for ours, theirs in zip(loop_curve, runs, strict=True):
        assert ours.eval_loss == pytest.approx(theirs.eval_loss, rel=1e-3)
        assert ours.learning_rate == pytest.approx(theirs.learning_rate, rel=1e-6)


def test_trainer_keys_go_to_the_trainer_and_the_export_sft_keys_to_the_sft_config(
    tiny_config_dict,
) -> None:
    args = {"neftune_noise_alpha": 5.0, "dataset_num_proc": 2, "adam_beta2": 0.98}
    raw = _raw(tiny_config_dict, "sft", optim="adafactor", args=args)
    config = config_from_dict(raw)
    keys = training_arguments(config, HP, 0)
    assert keys["optim"] == "adafactor" and keys["neftune_noise_alpha"] == 5.0
    assert keys["adam_beta2"] == 0.98 and "dataset_num_proc" not in keys
    assert sft_arguments(config, "template")["dataset_num_proc"] == 2


def test_a_key_that_means_a_training_key_is_read_as_it(tiny_config_dict) -> None:
    raw = _raw(tiny_config_dict, "trainer", args={"lr_scheduler_type": "cosine_with_restarts",
                                                  "optim": "adamw_torch"})  # fmt: skip
    config = config_from_dict(raw)
    assert config.training.scheduler == "cosine_with_restarts"
    assert config.training.optim == "adamw_torch" and config.training.args == {}
    raw["training"]["args"] = {"num_train_epochs": 3}  # training.epochs is 1
    with pytest.raises(ConfigError, match="num_train_epochs .* is training.epochs, which is "
                       "given too"):  # fmt: skip
        config_from_dict(raw)


@pytest.mark.parametrize(
    ("backend", "training", "message"),
    [
        ("trainer", {"args": {"adam_beta3": 0.9}},
         "'adam_beta3' is not a TrainingArguments key of transformers .*did you mean 'adam_beta2'"),
        ("sft", {"args": {"packng": True}}, "not a SFTConfig key of trl .*did you mean 'packing'"),
        ("trainer", {"args": {"seed": 3}}, "'seed' is objective.seeds"),
        ("trainer", {"args": {"bf16": True}}, "the weights' dtype is model.dtype"),
        ("accelerate", {"args": {"neftune_noise_alpha": 5.0}},
         "neftune_noise_alpha is honoured by the Trainer backends only; set training.backend"),
        ("accelerate", {"optim": "adafactor"}, "hptune's own loop trains with adamw_torch"),
        ("trainer", {"args": {"dataloader_num_workers": 4}}, "'dataloader_num_workers' is set "
         "by hptune"),
        ("trainer", {"optim": "adamw_torh"}, "did you mean 'adamw_torch'"),
        ("trainer", {"scheduler": "warmup_stable_decay"},
         "warmup_stable_decay scheduler needs training.args.lr_scheduler_kwargs with "
         "num_decay_steps"),
    ],
)  # fmt: skip
def test_what_a_backend_cannot_honour_is_refused_by_name(
    tiny_config_dict, backend, training, message
) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_raw(tiny_config_dict, backend, **training))


def test_an_8bit_optimizer_without_bitsandbytes_says_what_to_install(tiny_config_dict) -> None:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    with pytest.raises(ConfigError, match="paged_adamw_8bit needs bitsandbytes"):
        config_from_dict(_raw(tiny_config_dict, "trainer", optim="paged_adamw_8bit"))


def test_a_scheduler_given_as_a_trainer_key_runs_on_the_trainer_backend(tiny_config_dict):
    import optuna

    from hptune.pipeline import tune

    args = {"lr_scheduler_type": "cosine_with_restarts", "lr_scheduler_kwargs": {"num_cycles": 2}}
    raw = _raw(tiny_config_dict, "trainer", args=args)
    raw["phases"] = {"run": ["baseline"]}
    config = config_from_dict(raw)
    tune(config)
    study = optuna.load_study(study_name="tiny.baseline", storage=config.storage_url)
    [trial] = study.trials
    assert trial.state.name == "COMPLETE"
    assert trial.user_attrs["hparams"]["scheduler"] == "cosine_with_restarts"


def test_scheduler_kwargs_go_to_the_schedules_that_take_them(tiny_config_dict) -> None:
    from hptune.train.arguments import scheduler_kwargs

    kwargs = {"min_lr_rate": 0.1, "num_cycles": 0.5}
    assert scheduler_kwargs("linear", kwargs) == {}
    assert scheduler_kwargs("cosine", kwargs) == {"num_cycles": 0.5}
    assert scheduler_kwargs("cosine_with_min_lr", kwargs) == kwargs
    # a linear trial of a run whose kwargs are for cosine_with_min_lr trains, in both paths
    raw = _raw(tiny_config_dict, args={"lr_scheduler_kwargs": {"min_lr_rate": 0.2}})
    config = config_from_dict(raw)
    linear = HP.replace(scheduler="linear", epochs=1)
    assert training_arguments(config, linear, 0)["lr_scheduler_kwargs"] == {}
    [epoch] = make_runner(config).train(linear, 0).epochs
    assert epoch.learning_rate == 0.0  # linear decays to 0, no min_lr_rate
