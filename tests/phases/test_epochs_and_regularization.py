import json

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


def test_regularization_grids_each_candidate_at_each_rate_the_incoming_first() -> None:
    phase = RegularizationPhase(incoming=BASE)
    points = phase.grid_points()
    rates = [p["learning_rate"] for p in points]
    assert points[0] == {"weight_decay": 0.01, "scheduler": "linear", "warmup_ratio": 0.05,
                         "learning_rate": 1e-4, "epochs": 2}  # fmt: skip
    # The incoming configuration at its rate first; each changed candidate at x1, x0.5, x2;
    # the incoming one's other rates last (the learning-rate phase tuned the rate under it).
    assert rates == pytest.approx([1e-4] + [1e-4, 5e-5, 2e-4] * 2 + [5e-5, 2e-4])
    schedulers = [p["scheduler"] for p in points]
    assert schedulers == ["linear"] + ["cosine"] * 3 + ["constant_with_warmup"] * 3 + ["linear"] * 2
    candidates = phase.candidates()
    assert len({json.dumps(c, sort_keys=True) for c in candidates}) == 3  # no duplicate
    for c in candidates[1:]:  # drawn in the ranges, at two significant digits
        assert 0.01 <= c["weight_decay"] <= 0.1 and 0.05 <= c["warmup_ratio"] <= 0.1
        assert float(f"{c['weight_decay']:.2g}") == c["weight_decay"]
        assert type(c["warmup_ratio"]) is float
    assert phase.n_trials() == 9
    assert RegularizationPhase(incoming=BASE, n_trials=4).grid_points() == points[:4]
    outside = RegularizationPhase(incoming=BASE.replace(warmup_ratio=0.0))
    assert all(p["warmup_ratio"] != 0.0 for p in outside.grid_points())  # not a candidate


def test_regularization_given_candidates_keep_the_incoming_values_they_leave_out() -> None:
    given = [{"scheduler": "constant_with_warmup", "warmup_ratio": 0.0}, {"scheduler": "linear"}]
    phase = RegularizationPhase(candidates=given, rate_factors=[1.0, 0.5])
    points = phase.initial_params(BASE)
    assert points == [
        {"weight_decay": 0.01, "scheduler": "linear", "warmup_ratio": 0.05, "learning_rate": 1e-4,
         "epochs": 2},
        {"weight_decay": 0.01, "scheduler": "constant_with_warmup", "warmup_ratio": 0.0,
         "learning_rate": 1e-4, "epochs": 2},
        {"weight_decay": 0.01, "scheduler": "constant_with_warmup", "warmup_ratio": 0.0,
         "learning_rate": 5e-5, "epochs": 2},
        {"weight_decay": 0.01, "scheduler": "linear", "warmup_ratio": 0.05, "learning_rate": 5e-5,
         "epochs": 2},
    ]  # fmt: skip
    # the incoming configuration is always a candidate, the reference of the given ones
    alone = RegularizationPhase(candidates=[{"scheduler": "cosine"}], incoming=BASE)
    assert [p["scheduler"] for p in alone.grid_points()][:2] == ["linear", "cosine"]
    study = optuna.create_study(sampler=phase.create_sampler())
    for point in points:
        study.enqueue_trial(point)
    hps = [phase.suggest(study.ask(), BASE) for _ in points]
    assert (hps[2].scheduler, hps[2].warmup_ratio, hps[2].learning_rate) == (
        "constant_with_warmup", 0.0, 5e-5)  # fmt: skip


def test_regularization_drawn_candidates_follow_the_seed() -> None:
    first = RegularizationPhase(incoming=BASE, sampler_seed=3).candidates()
    assert RegularizationPhase(incoming=BASE, sampler_seed=3).candidates() == first
    assert RegularizationPhase(incoming=BASE, sampler_seed=4).candidates() != first
    with pytest.raises(pydantic.ValidationError, match="sampler_seed"):
        RegularizationPhaseConfig(sampler_seed=-1)


def reg_outcome(number: int, wd: float, scheduler: str, warmup: float, values: list[float],
                rate: float = 1e-4):  # fmt: skip
    params = {"weight_decay": wd, "scheduler": scheduler, "warmup_ratio": warmup,
              "learning_rate": rate}  # fmt: skip
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
    assert decision.params == {"weight_decay": 0.05, "scheduler": "cosine", "warmup_ratio": 0.08,
                               "learning_rate": 1e-4}  # fmt: skip
    assert decision.apply(BASE).scheduler == "cosine"


def test_regularization_compares_each_candidate_at_its_own_best_rate() -> None:
    # A constant rate is worse than the incoming linear decay at the incoming rate and best at
    # half of it: the phase changes both, and says at which rate each candidate won.
    outcomes = [
        reg_outcome(0, 0.01, "linear", 0.05, [1.50, 1.60, 1.55]),
        reg_outcome(1, 0.01, "linear", 0.05, [1.56, 1.66, 1.60], rate=5e-5),
        reg_outcome(2, 0.01, "linear", 0.05, [1.53, 1.64, 1.57], rate=2e-4),
        reg_outcome(3, 0.0, "constant_with_warmup", 0.0, [1.70, 1.80, 1.76]),
        reg_outcome(4, 0.0, "constant_with_warmup", 0.0, [1.30, 1.41, 1.33], rate=5e-5),
        reg_outcome(5, 0.0, "constant_with_warmup", 0.0, [1.90, 2.00, 1.93], rate=2e-4),
    ]
    decision = RegularizationPhase().decide(outcomes, BASE, "minimize")
    assert decision.params == {"weight_decay": 0.0, "scheduler": "constant_with_warmup",
                               "warmup_ratio": 0.0, "learning_rate": 5e-5}  # fmt: skip
    assert decision.apply(BASE).learning_rate == 5e-5
    assert "at rate 5e-05 (x0.5)" in decision.reason
    won = {r["candidate"].split(", ")[1]: r["factor"] for r in decision.summary["rates_won"]}
    assert won == {"constant_with_warmup": 0.5, "linear": 1.0}


def test_regularization_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="n_trials"):
        RegularizationPhase(n_trials=1)
    with pytest.raises(ValueError, match="weight_decay"):
        RegularizationPhase(weight_decay=(0.1, 0.01))
    with pytest.raises(ValueError, match="rate_factors"):
        RegularizationPhase(rate_factors=[0.5, 2.0])
    with pytest.raises(pydantic.ValidationError, match="1.0 among them"):
        RegularizationPhaseConfig(rate_factors=[0.5, 2.0])
    with pytest.raises(ValueError, match="incoming configuration"):
        RegularizationPhase().grid_points()


def _stored(params: dict) -> optuna.trial.FrozenTrial:
    choices = {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()}
    return optuna.trial.create_trial(params=params, distributions=choices, value=1.0)


def test_regularization_counts_a_trial_stored_without_a_count_at_the_incoming_one() -> None:
    """A study the phase started before its trials carried the epoch count: its first point
    is done, not queued again; a spare trial at another count settles no grid point."""
    phase = RegularizationPhase(incoming=BASE, epoch_counts=[3])
    points = phase.grid_points()
    stored = _stored({k: v for k, v in points[0].items() if k != "epochs"})
    spare = _stored({**points[1], "epochs": 3})
    assert phase.n_remaining([]) == len(points)
    assert phase.n_remaining([stored]) == len(points) - 1
    assert phase.n_remaining([stored, spare]) == len(points) - 1


def test_epoch_counts_at_their_own_rates_when_asked() -> None:
    """With rate_factors [0.5, 1, 2] each count runs at three rates (longest first, the
    incoming rate first), the pruner pairs only trials at one rate, and the fewest count
    equivalent to the best wins at its best rate."""
    rate = BASE.learning_rate
    phase = EpochsPhase((2, 3), rate=rate, rate_factors=[0.5, 1.0, 2.0], margin=0.5)
    assert phase.grid_points() == [
        {"epochs": e, "learning_rate": rate * f} for e in (3, 2) for f in (1.0, 0.5, 2.0)
    ]
    assert phase.create_pruner().shape_params == ("learning_rate",)
    study = optuna.create_study(sampler=phase.create_sampler())
    for params in phase.initial_params(BASE)[:2]:
        study.enqueue_trial(params)
    hps = [phase.suggest(study.ask(), BASE) for _ in range(2)]
    assert [(hp.epochs, hp.learning_rate) for hp in hps] == [(3, rate), (3, rate * 0.5)]

    def at(number: int, epochs: int, factor: float, values: list[float]) -> TrialOutcome:
        return TrialOutcome(number, {"epochs": epochs, "learning_rate": rate * factor},
                            dict(enumerate(values)), "ok")  # fmt: skip

    decision = phase.decide([
        at(0, 3, 1.0, [2.00, 2.10, 1.90]), at(1, 3, 0.5, [2.50, 2.60, 2.40]),
        at(2, 2, 1.0, [2.60, 2.70, 2.50]), at(3, 2, 2.0, [2.01, 2.11, 1.91]),
    ], BASE, "minimize")  # fmt: skip
    assert decision.params == {"epochs": 2, "learning_rate": rate * 2}
    assert "2 epochs at rate 0.0002 (x2)" in decision.reason
    won = {r["candidate"]: r["factor"] for r in decision.summary["rates_won"]}
    assert won == {"3 epochs": 1.0, "2 epochs": 2.0}
    assert EpochsPhase((2, 3), rate=rate).grid_points() == [{"epochs": 3}, {"epochs": 2}]
