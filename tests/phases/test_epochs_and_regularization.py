import optuna
import pydantic
import pytest

from hptune.config import RegularizationPhaseConfig
from hptune.hparams import HParams
from hptune.phases import EpochsPhase, RegularizationPhase, TrialOutcome, default_epoch_range
from hptune.search import PairedPruner

BASE = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=1, epochs=2,
               warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip


def test_default_epoch_range_follows_the_presets_widened() -> None:
    assert default_epoch_range(500) == (3, 5)  # under 1,000 examples: 3-5
    assert default_epoch_range(5_000) == (2, 4)  # 2-3, widened to three values
    assert default_epoch_range(50_000) == (1, 3)


def test_epochs_phase_queues_every_count_longest_first() -> None:
    phase = EpochsPhase((2, 4))
    assert phase.initial_params(BASE) == [{"epochs": 4}, {"epochs": 3}, {"epochs": 2}]
    assert phase.max_epochs(BASE) == 9  # the range's top, 4, then 6 and 9 past it at most
    assert EpochsPhase((2, 4), extend_edges=0).max_epochs(BASE) == 4
    pruner = phase.create_pruner()
    assert isinstance(pruner, PairedPruner)
    assert pruner.schedule_param == "epochs"  # a shorter schedule is never a longer one's yardstick
    assert isinstance(EpochsPhase((2, 4), pruning=False).create_pruner(), optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="epoch_range"):
        EpochsPhase((3, 3))


def epochs_outcome(number: int, epochs: int, values: list[float], status: str = "ok"):
    return TrialOutcome(number, {"epochs": epochs}, dict(enumerate(values)), status)


def test_fewest_equivalent_epochs() -> None:
    outcomes = [
        epochs_outcome(0, 4, [1.50, 1.60, 1.55, 1.53, 1.58, 1.52]),
        epochs_outcome(1, 3, [1.51, 1.60, 1.54, 1.54, 1.58, 1.515]),
        epochs_outcome(2, 2, [1.90, 2.00, 1.95, 1.92, 1.97, 1.91]),
    ]
    decision = EpochsPhase((2, 4)).decide(outcomes, BASE, "minimize")
    assert decision.params == {"epochs": 3}
    assert decision.case == "fewest_equivalent"
    assert "3 epochs: equivalent, worse by 0.0008333" in decision.reason


def test_fewer_epochs_not_told_apart_do_not_win_on_cost() -> None:
    outcomes = [
        epochs_outcome(0, 4, [1.50, 1.60, 1.55]),
        epochs_outcome(1, 3, [1.58, 1.59, 1.62]),  # 0.047 worse, 2 degrees of freedom
        epochs_outcome(2, 2, [1.90, 2.00, 1.95]),
    ]
    decision = EpochsPhase((2, 4)).decide(outcomes, BASE, "minimize")
    assert decision.params == {"epochs": 4}
    assert decision.case == "best_mean_undecided"


def test_pruned_trials_never_win() -> None:
    pruned = TrialOutcome(1, {"epochs": 2}, {}, "pruned")
    outcomes = [epochs_outcome(0, 4, [1.5, 1.6, 1.55]), pruned]
    decision = EpochsPhase((2, 4)).decide(outcomes, BASE, "minimize")
    assert decision.params == {"epochs": 4}
    assert "1 trial(s) pruned" in decision.reason


def test_regularization_space_and_first_trial() -> None:
    phase = RegularizationPhase(n_trials=4)
    assert phase.initial_params(BASE) == [
        {"weight_decay": 0.01, "scheduler": "linear", "warmup_ratio": 0.05}
    ]
    fixed = {"weight_decay": 0.05, "scheduler": "cosine", "warmup_ratio": 0.08}
    hp = phase.suggest(optuna.trial.FixedTrial(fixed), BASE)
    assert (hp.weight_decay, hp.scheduler, hp.warmup_ratio) == (0.05, "cosine", 0.08)
    assert hp.learning_rate == BASE.learning_rate
    outside = BASE.replace(warmup_ratio=0.0)
    assert phase.initial_params(outside) == []  # no warmup is outside the method's space
    sampler = phase.create_sampler()
    assert isinstance(sampler, optuna.samplers.TPESampler) and sampler._multivariate


def reg_outcome(number: int, wd: float, scheduler: str, warmup: float, values: list[float]):
    params = {"weight_decay": wd, "scheduler": scheduler, "warmup_ratio": warmup}
    return TrialOutcome(number, params, dict(enumerate(values)), "ok")


def test_regularization_keeps_the_incoming_configuration_within_noise() -> None:
    outcomes = [
        reg_outcome(0, 0.01, "linear", 0.05, [1.50, 1.60, 1.55, 1.53, 1.58, 1.52]),
        reg_outcome(1, 0.05, "cosine", 0.08, [1.49, 1.61, 1.54, 1.53, 1.59, 1.51]),
    ]
    decision = RegularizationPhase().decide(outcomes, BASE, "minimize")
    assert decision.case == "no_change_equivalent"
    assert decision.params == {}


def test_regularization_changes_when_the_incoming_one_is_not_told_apart() -> None:
    outcomes = [
        reg_outcome(0, 0.01, "linear", 0.05, [1.50, 1.60, 1.55]),
        reg_outcome(1, 0.05, "cosine", 0.08, [1.42, 1.61, 1.50]),
    ]
    decision = RegularizationPhase().decide(outcomes, BASE, "minimize")
    assert decision.case == "best_mean_undecided"
    assert decision.params["scheduler"] == "cosine"


def test_regularization_changes_when_better_beyond_noise() -> None:
    outcomes = [
        reg_outcome(0, 0.01, "linear", 0.05, [1.50, 1.60, 1.55]),
        reg_outcome(1, 0.05, "cosine", 0.08, [1.40, 1.50, 1.44]),
    ]
    decision = RegularizationPhase().decide(outcomes, BASE, "minimize")
    assert decision.case == "better_beyond_noise"
    assert decision.params == {"weight_decay": 0.05, "scheduler": "cosine", "warmup_ratio": 0.08}
    assert decision.apply(BASE).scheduler == "cosine"


def test_regularization_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        RegularizationPhase(n_trials=1)
    with pytest.raises(ValueError, match="weight_decay"):
        RegularizationPhase(weight_decay=(0.1, 0.01))


def _proposals(phase: RegularizationPhase, n: int) -> list[dict]:
    study = optuna.create_study(sampler=phase.create_sampler())
    proposals = []
    for index in range(n):
        trial = study.ask()
        phase.suggest(trial, BASE)
        study.tell(trial, float(index % 3))
        proposals.append(trial.params)
    return proposals


def test_regularization_sampler_seed_repeats_or_changes_the_proposals() -> None:
    first = _proposals(RegularizationPhase(sampler_seed=3), 6)
    assert _proposals(RegularizationPhase(sampler_seed=3), 6) == first
    assert _proposals(RegularizationPhase(sampler_seed=4), 6) != first
    with pytest.raises(pydantic.ValidationError, match="sampler_seed"):
        RegularizationPhaseConfig(sampler_seed=-1)
