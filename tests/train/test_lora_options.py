"""method.lora: any peft LoraConfig key passed through to the adapter, checked against the
installed peft, carried by the export, and the base model reused only when it stays as
loaded."""

from __future__ import annotations

import math

import pytest
import yaml

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.train import make_runner
from tests.test_cli import hptune


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def test_rslora_scales_the_adapter_by_alpha_over_root_r(tiny_config_dict) -> None:
    tiny_config_dict["method"].update(r=16, alpha=32, lora={"use_rslora": True})
    runner = make_runner(config_from_dict(tiny_config_dict))
    model = runner.load_run_model()
    layers = _lora_layers(model)
    assert layers and all(
        layer.scaling["default"] == pytest.approx(32 / math.sqrt(16)) for layer in layers
    )
    runner.release_run_model(model)
    assert runner._base is not None  # the base is shared: rsLoRA leaves it as loaded
    plain = make_runner(config_from_dict({**tiny_config_dict, "method": {
        **tiny_config_dict["method"], "lora": {}}}))  # fmt: skip
    assert {layer.scaling["default"] for layer in _lora_layers(plain.load_run_model())} == {2.0}


def test_modules_to_save_trains_a_copy_and_the_base_is_not_shared(tiny_config_dict) -> None:
    tiny_config_dict["method"]["lora"] = {"modules_to_save": ["lm_head"]}
    config = config_from_dict(tiny_config_dict)
    assert not config.method.reuses_base()
    model = make_runner(config).load_run_model()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lm_head.modules_to_save" in n for n in trainable)


@pytest.mark.parametrize(
    ("lora", "message"),
    [
        ({"use_rslor": True}, "'use_rslor' is not a LoraConfig key of the installed peft .*"
                              "did you mean 'use_rslora'"),
        ({"lora_alpha": 32}, "'lora_alpha' is method.alpha; set it there"),
        ({"r": 4}, "'r' is the rank, method.r"),
        ({"layers_pattern": "layers"}, "peft's LoraConfig refuses it: .*layers_to_transform"),
    ],
)  # fmt: skip
def test_a_key_peft_does_not_have_or_hptune_sets_is_refused_by_name(
    tiny_config_dict, lora, message
) -> None:
    tiny_config_dict["method"]["lora"] = lora
    with pytest.raises(ConfigError, match=f"method.lora: .*{message}"):
        config_from_dict(tiny_config_dict)


def test_lora_keys_with_full_fine_tuning_are_refused(tiny_config_dict) -> None:
    tiny_config_dict["method"].update(type="full", lora={"use_dora": True})
    with pytest.raises(ConfigError, match="apply to method.type lora or qlora, not full"):
        config_from_dict(tiny_config_dict)


def test_plan_refuses_an_unknown_lora_key_with_the_nearest_name(tmp_path, tiny_config_dict) -> None:
    tiny_config_dict["method"]["lora"] = {"use_dorra": True}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict))
    out = hptune("plan", str(path))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "did you mean 'use_dora'" in out.stderr


def test_an_rslora_run_on_the_trainer_backend_exports_its_lora_config(tmp_path, tiny_config_dict):
    from peft import LoraConfig

    from hptune._export import exported_config
    from hptune.pipeline import tune

    tiny_config_dict["method"]["lora"] = {"use_rslora": True}
    tiny_config_dict["training"]["backend"] = "trainer"
    tiny_config_dict["phases"] = {"run": ["baseline"]}
    config = config_from_dict(tiny_config_dict)
    tune(config)
    exported = exported_config(config)["lora_config"]
    assert exported["use_rslora"] is True
    assert LoraConfig(**exported).use_rslora  # a plain peft script builds it as it is


def _curve(tmp_path, tiny_config_dict, backend, ratio):
    from hptune.hparams import HParams

    raw = {**tiny_config_dict, "output_dir": str(tmp_path / backend / str(ratio))}
    raw["method"] = {**tiny_config_dict["method"], "loraplus_lr_ratio": ratio}
    raw["training"] = {**tiny_config_dict["training"], "backend": backend, "checkpoints": False}
    hp = HParams(learning_rate=2e-3, batch_size=16, gradient_accumulation_steps=1, epochs=2,
                 warmup_ratio=0.0, weight_decay=0.01)  # fmt: skip
    runner = make_runner(config_from_dict(raw))
    return [e.eval_loss for e in runner.train(hp, 0).epochs]


def test_loraplus_trains_the_b_matrices_faster_alike_in_the_loop_and_the_trainer(
    tmp_path, tiny_config_dict
) -> None:
    from hptune.hparams import HParams
    from hptune.train.steps import build_adamw

    model = make_runner(config_from_dict(tiny_config_dict)).load_run_model()
    hp = HParams(learning_rate=1e-3, batch_size=4, gradient_accumulation_steps=1, epochs=1,
                 warmup_ratio=0.0, weight_decay=0.01)  # fmt: skip
    groups = build_adamw(model, hp, None, {}, 16.0).param_groups
    rates = {g["lr"] for g in groups if g["params"]}
    assert sorted(rates) == [1e-3, 16e-3]  # A at the rate, B at 16 x
    loop = _curve(tmp_path, tiny_config_dict, "accelerate", 16.0)
    trainer = _curve(tmp_path, tiny_config_dict, "trainer", 16.0)
    plain = _curve(tmp_path, tiny_config_dict, "accelerate", None)
    assert loop == pytest.approx(trainer, rel=1e-3)  # the same optimizer in both backends
    assert abs(loop[-1] - plain[-1]) > 1e-3  # and not plain LoRA's


def test_loraplus_with_your_own_training_or_another_optimizer_is_refused(
    tiny_config_dict,
) -> None:
    tiny_config_dict["method"]["loraplus_lr_ratio"] = 16
    tiny_config_dict["training"]["optim"] = "adafactor"
    tiny_config_dict["training"]["backend"] = "trainer"
    with pytest.raises(ConfigError, match="LoRA\\+ trains with AdamW"):
        config_from_dict(tiny_config_dict)
    del tiny_config_dict["training"]["optim"]
    tiny_config_dict["training"].update(backend="accelerate", trainer_factory="mine:make")
    with pytest.raises(ConfigError, match="create_loraplus_optimizer there"):
        config_from_dict(tiny_config_dict)
