"""phases.regularization.space: TrainingArguments keys searched with weight decay, scheduler
and warmup, checked as training.args is, decided by the same rule and trained as decided."""

from __future__ import annotations

import optuna
import pytest

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.phases import RegularizationPhase, TrialOutcome

BASE = HParams(learning_rate=5e-3, batch_size=16, gradient_accumulation_steps=1, epochs=1,
               warmup_ratio=0.06, weight_decay=0.02)  # fmt: skip


@pytest.mark.parametrize(
    ("backend", "space", "message"),
    [
        ("accelerate", {"neftune_noise_alpha": [0.0, 5.0]},
         "neftune_noise_alpha is honoured by the Trainer backends only"),
        ("trainer", {"learning_rate": {"low": 1e-4, "high": 1e-3}},
         "learning_rate is training.learning_rate, which hptune's phases decide"),
        ("trainer", {"adam_beta3": [0.9, 0.99]}, "did you mean 'adam_beta2'"),
        ("trainer", {"adam_beta2": {"low": 0.999, "high": 0.9}}, "give low < high"),
    ],
)  # fmt: skip
def test_a_space_key_the_backend_cannot_search_is_refused(
    tiny_config_dict, backend, space, message
) -> None:
    tiny_config_dict["training"]["backend"] = backend
    tiny_config_dict["phases"] = {"run": ["regularization"], "regularization": {"space": space}}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(tiny_config_dict)


def test_the_incoming_trial_carries_the_trainer_default_and_the_search_adds_the_key() -> None:
    phase = RegularizationPhase(n_trials=6, space={"adam_beta2": (0.9, 0.999, False)},
                                defaults={"adam_beta2": 0.999})  # fmt: skip
    points = phase.initial_params(BASE)
    assert points[0]["adam_beta2"] == 0.999
    drawn = {p["adam_beta2"] for p in points[1:4]}  # the first drawn candidate at 3 rates
    assert len(drawn) == 1 and 0.9 <= drawn.pop() <= 0.999
    study = optuna.create_study(sampler=phase.create_sampler())
    for point in points:
        study.enqueue_trial(point)
    hp = phase.suggest(study.ask(), BASE)
    assert dict(hp.args) == {"adam_beta2": 0.999}
    others = [phase.suggest(study.ask(), BASE) for _ in points[1:]]
    assert dict(others[-1].args)["adam_beta2"] == points[-1]["adam_beta2"]


def test_the_decision_carries_the_searched_value_and_applies_it() -> None:
    phase = RegularizationPhase(n_trials=2, space={"adam_beta2": [0.95, 0.999]},
                                defaults={"adam_beta2": 0.999}, margin=0.01)  # fmt: skip
    common = {"weight_decay": 0.02, "scheduler": "linear", "warmup_ratio": 0.06,
              "learning_rate": 5e-3}  # fmt: skip
    outcomes = [
        TrialOutcome(0, {**common, "adam_beta2": 0.999}, {0: 2.0, 1: 2.1, 2: 1.9},
                     TrialStatus.OK),
        TrialOutcome(1, {**common, "adam_beta2": 0.95}, {0: 1.5, 1: 1.61, 2: 1.42},
                     TrialStatus.OK),
    ]  # fmt: skip
    decision = phase.decide(outcomes, BASE, "minimize")
    assert decision.params["args"] == {"adam_beta2": 0.95}
    assert "adam_beta2 0.95" in decision.reason
    assert dict(decision.apply(BASE).args) == {"adam_beta2": 0.95}


def test_a_searched_key_trains_and_exports_as_decided(tiny_config_dict) -> None:
    from hptune._export import exported_config
    from hptune.pipeline import tune

    tiny_config_dict["phases"] = {
        "run": ["regularization"],
        "regularization": {"n_trials": 2, "space": {"adam_beta2": [0.9, 0.999]}},
    }
    config = config_from_dict(tiny_config_dict)
    result = tune(config)
    study = optuna.load_study(study_name="tiny.regularization", storage=config.storage_url)
    tried = sorted(t.user_attrs["hparams"]["args"]["adam_beta2"] for t in study.trials
                   if "hparams" in t.user_attrs)  # fmt: skip
    assert 0.999 in tried  # the incoming configuration: the Trainer's default
    # the decided value (or, when the incoming configuration stays, the Trainer's default)
    decided = result.phases[-1].decision.params.get("args", {}).get("adam_beta2", 0.999)
    exported = exported_config(config)["training_args"]
    assert exported.get("adam_beta2", 0.999) == decided


def test_searched_values_are_the_same_hyperparameters_whatever_order_they_come_in() -> None:
    from hptune.hparams import HParams

    base = dict(learning_rate=1e-3, batch_size=4, gradient_accumulation_steps=1, epochs=1,
                warmup_ratio=0.0, weight_decay=0.0)  # fmt: skip
    pairs = HParams(**base, args=(("adam_beta2", 0.95), ("adam_beta1", 0.9)))
    mapping = HParams(**base, args={"adam_beta1": 0.9, "adam_beta2": 0.95})
    assert pairs == mapping and hash(pairs) == hash(mapping)
    assert pairs.args == (("adam_beta1", 0.9), ("adam_beta2", 0.95))
