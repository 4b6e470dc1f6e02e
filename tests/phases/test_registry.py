"""The registry is the one list of phases: a phase registered here, in this file alone (its
class and its section under ``phases:``), is validated, planned and run like the method's."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from hptune import ConfigError, keys
from hptune.config import PhaseOptions, config_from_dict, phase_names
from hptune.hparams import HParams
from hptune.phases import (
    PHASES,
    Choice,
    Decision,
    NoiseRanking,
    PhaseBudget,
    register_phase,
    unregister_phase,
)
from hptune.phases._grid import GridPhase


class ToyOptions(PhaseOptions):
    """Options of the toy phase."""

    #: The warmup ratios tried, each on every seed.
    ratios: tuple[float, ...] = (0.0, 0.1)


class ToyPhase(GridPhase):
    """A toy phase: a few warmup ratios, the best seed mean wins."""

    name = "toy_warmup"
    order = 5.5  # after the regularization phase, before the LoRA rank phase
    title = "Toy: warmup ratio"
    params = ("warmup_ratio",)
    options_model = ToyOptions

    def __init__(self, ratios: tuple[float, ...], **shared: Any) -> None:
        super().__init__(**shared)
        self.ratios = ratios

    @classmethod
    def configured(cls, config, base, runner, incoming) -> dict[str, Any]:
        return {"ratios": config.phases.section(cls.name, ToyOptions).ratios}

    @classmethod
    def planned(cls, config, base: HParams, n_train: int) -> PhaseBudget:
        trials = len(config.phases.section(cls.name, ToyOptions).ratios)
        return PhaseBudget(trials, (base.epochs, base.epochs), trials * base.epochs, "toy ratios")

    def grid_points(self) -> list[dict[str, Any]]:
        return [{"warmup_ratio": r} for r in self.ratios]

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        ratio = trial.suggest_categorical("warmup_ratio", self.ratios)
        return base.replace(warmup_ratio=ratio)

    def _choose(self, ranking: NoiseRanking, outcomes, base, direction) -> Choice:
        ratio = ranking.best.params["warmup_ratio"]  # the best seed mean wins
        return Choice({"warmup_ratio": ratio}, ranking.best.mean, "best", f"ratio {ratio}")


@pytest.fixture
def toy():
    register_phase(ToyPhase)
    yield ToyPhase
    unregister_phase(ToyPhase.name)


def test_a_registered_phase_is_listed_in_its_order_and_its_section_validated(
    toy, tiny_config_dict
) -> None:
    names = list(PHASES)
    assert names.index("toy_warmup") == names.index("regularization") + 1
    assert "toy_warmup" in phase_names()
    tiny_config_dict["phases"] = {
        "run": ["toy_warmup", "baseline"],
        "toy_warmup": {"ratios": [0.05]},
    }
    config = config_from_dict(tiny_config_dict)
    assert config.phases.run == ["baseline", "toy_warmup"]
    assert config.phases.section("toy_warmup", ToyOptions).ratios == (0.05,)
    tiny_config_dict["phases"]["toy_warmup"] = {"ratio": [0.05]}
    with pytest.raises(
        ConfigError, match=r"phases\.toy_warmup\.ratio: unknown key; did you mean 'ratios'"
    ):
        config_from_dict(tiny_config_dict)


def test_an_unregistered_phase_is_refused(tiny_config_dict) -> None:
    tiny_config_dict["phases"] = {"run": ["baseline", "toy_warmup"]}
    with pytest.raises(ConfigError, match="phases.run"):
        config_from_dict(tiny_config_dict)
    tiny_config_dict["phases"] = {"toy_warmup": {}}
    with pytest.raises(ConfigError, match=r"phases\.toy_warmup: unknown key"):
        config_from_dict(tiny_config_dict)


def test_the_plan_lists_a_registered_phase_and_a_run_runs_it(toy, tiny_config_dict) -> None:
    from hptune.pipeline import tune
    from hptune.plan import make_plan
    from hptune.record import RunRecord

    tiny_config_dict["phases"] = {
        "run": ["toy_warmup"],
        "toy_warmup": {"ratios": [0.0, 0.1]},
        "test_evaluation": False,
    }
    tiny_config_dict["objective"]["max_seeds"] = 2  # no racing: two trials, two seeds each
    config = config_from_dict(tiny_config_dict)
    plan = make_plan(config)
    [planned] = plan.phases
    assert (planned.phase, planned.trials, planned.what) == ("toy_warmup", 2, "toy ratios")

    result = tune(config)
    decision = result.phases[-1].decision
    assert decision.phase == "toy_warmup" and decision.case == "best"
    assert decision.params["warmup_ratio"] in (0.0, 0.1)
    study = optuna.load_study(study_name="tiny.toy_warmup", storage=config.storage_url)
    assert Decision.from_json(study.user_attrs[keys.DECISION]) == decision
    assert sorted(t.params["warmup_ratio"] for t in study.trials) == [0.0, 0.1]
    assert RunRecord(config).phase("toy_warmup").decision == decision
