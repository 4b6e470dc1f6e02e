"""The contract every phase keeps, checked over every registered phase (as Optuna checks
every sampler): built from a configuration alone, a valid decision with no trial, decisions
that survive JSON, a budget that never goes negative, and initial parameters its own
``suggest`` accepts. Trials go through real ``study.ask``/``tell``."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest

from hptune import keys
from hptune.config import PHASE_NAMES, config_from_dict
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.phases import PHASES, Decision, Phase, make_phase
from hptune.record import decision_outcomes

BASE = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=4, epochs=2,
               warmup_ratio=0.06, weight_decay=0.02)  # fmt: skip
SEEDS = [0, 1, 2]


#: Variants of a phase's options the contract also holds for (``phase+variant``).
VARIANTS = {
    "alphas": ("lora_rank", {"alphas": [8, 32]}),  # alpha searched too
    "rates": ("epochs", {"rate_factors": [0.5, 1.0, 2.0]}),  # each count at its own rates
}


def _config(tmp_path, variant: str = ""):
    name, options = VARIANTS.get(variant, ("", {}))
    phases = {
        "learning_rate": {"grid": [1e-5, 1e-4, 1e-3]},
        "batch_size": {"probe": False, "memory_limit_gb": 80, "n_trials": 2},
        "epochs": {"range": [1, 3]},
        "regularization": {"n_trials": 3},
        "lora_rank": {"ranks": [4, 8, 16]},
    }
    if name:
        phases[name] = {**phases[name], **options}
    return config_from_dict(
        {
            "name": "contract",
            "model": {"path": "demo://model"},
            "data": {"train": "t.jsonl", "validation": "v.jsonl"},
            "output_dir": str(tmp_path),
            "max_retries": 1,
            "phases": phases,
        }
    )


@pytest.fixture(params=[*PHASES, *(f"{name}+{v}" for v, (name, _) in VARIANTS.items())])
def phase(request, demo_path, tmp_path) -> Phase:
    runner = SimpleNamespace(data=SimpleNamespace(n_train=200, max_train_length=64))
    name, _, variant = request.param.partition("+")
    built = make_phase(name, _config(tmp_path, variant), runner, BASE)  # type: ignore[arg-type]
    built.variant = variant  # type: ignore[attr-defined]
    return built


def test_the_registry_names_every_configurable_phase_and_the_final_evaluation() -> None:
    assert list(PHASES) == [*PHASE_NAMES, "final"]
    assert all(cls.name == name for name, cls in PHASES.items())


def test_the_constructor_sets_everything_from_the_configuration(phase: Phase) -> None:
    assert phase.max_retries == 1  # from the configuration, not set after construction
    assert isinstance(phase.notes, tuple)


def test_deciding_on_no_trial_is_a_valid_decision_that_fixes_nothing(phase: Phase) -> None:
    decision = phase.decide([], BASE, "minimize")
    assert isinstance(decision, Decision)
    assert decision.phase == phase.name
    assert decision.params == {}
    assert decision.apply(BASE) == BASE
    assert Decision.from_json(decision.to_json()) == decision


def test_initial_parameters_lie_within_what_suggest_allows(phase: Phase) -> None:
    study = optuna.create_study(sampler=phase.create_sampler())
    for params in phase.initial_params(BASE):
        study.enqueue_trial(params)
        trial = study.ask()
        phase.suggest(trial, BASE)
        assert trial.params == params
        for name, value in params.items():  # Optuna keeps an out-of-range enqueued value
            distribution = trial.distributions[name]
            assert distribution._contains(distribution.to_internal_repr(value)), (name, value)
        study.tell(trial, 1.0)


def _run_trials(phase: Phase, direction: str) -> optuna.Study:
    """Every trial of the phase through ask/tell, with made-up seed values."""
    study = optuna.create_study(direction=direction, sampler=phase.create_sampler())
    for params in phase.initial_params(BASE):
        study.enqueue_trial(params)
    remaining = [phase.n_remaining(study.get_trials(deepcopy=False))]
    while remaining[-1] > 0:
        trial = study.ask()
        hp = phase.suggest(trial, BASE)
        base_value = 2.0 + abs(hp.learning_rate - 1e-4) * 100 + 0.01 * hp.epochs
        seed_values = {str(s): base_value + 0.003 * s for s in SEEDS}
        trial.set_user_attr(keys.STATUS, TrialStatus.OK)
        trial.set_user_attr(keys.SEED_VALUES, seed_values)
        trial.set_user_attr(keys.EXAMPLES_PER_SECOND, 100.0 * hp.batch_size)
        study.tell(trial, sum(seed_values.values()) / len(seed_values))
        remaining.append(phase.n_remaining(study.get_trials(deepcopy=False)))
        assert len(remaining) <= phase.n_trials() + 1, "the budget never ran out"
    assert remaining[0] == phase.n_trials()
    assert all(n >= 0 for n in remaining)
    assert remaining == sorted(remaining, reverse=True)
    return study


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_decisions_on_real_trials_round_trip_through_json(phase: Phase, direction: str) -> None:
    study = _run_trials(phase, direction)
    outcomes = decision_outcomes(study.get_trials(deepcopy=False))
    assert len(outcomes) == phase.n_trials()
    decision = phase.decide(outcomes, BASE, direction)
    assert decision.value is not None
    assert Decision.from_json(decision.to_json()) == decision
    decision.apply(BASE)  # the fixed values are valid hyperparameters


def test_the_plan_budget_is_the_phase_budget(phase: Phase, tmp_path) -> None:
    variant = phase.variant  # type: ignore[attr-defined]
    budget = type(phase).planned(_config(tmp_path, variant), BASE, 200)
    assert budget.trials == phase.n_trials() + phase.extend_edges  # edge extensions at most
    low, high = budget.epochs
    assert high == phase.max_epochs(BASE)
    assert budget.trials * low <= budget.seed_epochs <= budget.trials * high
