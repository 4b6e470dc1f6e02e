import optuna
import pytest

from hptune.hparams import HParams
from hptune.phases import LearningRatePhase, TrialOutcome

BASE = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=1, epochs=1,
               warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip


def outcome(number: int, lr: float, values: list[float], status: str = "ok") -> TrialOutcome:
    seeds = dict(enumerate(values)) if status == "ok" else {}
    return TrialOutcome(number, {"learning_rate": lr}, seeds, status)


def test_the_queue_runs_each_grid_rate_once_through_a_real_study(tmp_path) -> None:
    from hptune.config import config_from_dict
    from hptune.pipeline import work_through_queue
    from hptune.storage import open_storage

    config = config_from_dict({"name": "lr", "model": {"path": "demo://model"},
                               "data": {"train": "t.jsonl", "validation": "v.jsonl"},
                               "output_dir": str(tmp_path)})  # fmt: skip
    phase = LearningRatePhase([1e-5, 5e-5, 1e-4, 5e-4])
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name="lr.learning_rate",
                                sampler=phase.create_sampler())  # fmt: skip
    seen = []

    def objective(trial: optuna.Trial) -> float:
        hp = phase.suggest(trial, BASE)
        assert hp.batch_size == BASE.batch_size  # only the rate changes
        seen.append(hp.learning_rate)
        return (hp.learning_rate - 1e-4) ** 2

    result = work_through_queue(config, storage, study, phase, BASE, objective)
    assert sorted(seen) == [1e-5, 5e-5, 1e-4, 5e-4]  # each grid point once, nothing more
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert study.user_attrs["hptune.decision"] == result.decision.to_json()  # decided once
    assert phase.n_remaining(study.trials) == 0


def test_clear_winner() -> None:
    outcomes = [
        outcome(0, 1e-5, [2.00, 2.10, 2.05]),
        outcome(1, 1e-4, [1.50, 1.60, 1.55]),
        outcome(2, 5e-4, [1.80, 1.95, 1.85]),
    ]
    decision = LearningRatePhase([1e-5, 1e-4, 5e-4]).decide(outcomes, BASE, "minimize")
    assert decision.case == "clear_winner"
    assert decision.params == {"learning_rate": 1e-4}
    assert decision.value == pytest.approx(1.55)
    assert decision.apply(BASE).learning_rate == 1e-4


def test_a_rate_not_told_apart_never_wins_over_the_best_mean() -> None:
    outcomes = [
        outcome(0, 1e-5, [3.0, 3.1, 3.2]),
        outcome(1, 5e-5, [1.52, 1.49, 1.60]),  # noisy, close to the best
        outcome(2, 1e-4, [1.50, 1.55, 1.52]),
    ]
    for tie_break in ("best_mean", "lowest"):
        decision = LearningRatePhase([1e-5, 5e-5, 1e-4], tie_break=tie_break).decide(
            outcomes, BASE, "minimize"
        )
        assert decision.case == "best_mean_undecided"
        assert decision.params == {"learning_rate": 1e-4}
        assert "5e-05 not told apart from it with 3 seeds" in decision.reason
        assert "rate 5e-05: undecided, worse by 0.01333 (family-wise 95% interval" in (
            decision.reason
        )


def test_the_demo_case_the_clearly_better_higher_rate_wins() -> None:
    # The demo's learning rates 0.005 and 0.01: 0.01 is better on every seed by about 0.15.
    outcomes = [
        outcome(0, 5e-3, [2.371, 2.405, 2.364]),
        outcome(1, 1e-2, [2.201, 2.262, 2.215]),
        outcome(2, 5e-2, [3.4, 3.9, 3.2]),
    ]
    decision = LearningRatePhase([5e-3, 1e-2, 5e-2], tie_break="lowest").decide(
        outcomes, BASE, "minimize"
    )
    assert decision.params == {"learning_rate": 1e-2}
    assert decision.case == "clear_winner"


def test_lowest_equivalent_rate_when_asked() -> None:
    outcomes = [
        outcome(0, 1e-5, [3.0, 3.1, 3.2]),
        outcome(1, 5e-5, [1.51, 1.55, 1.53]),  # within 0.01 on every seed
        outcome(2, 1e-4, [1.50, 1.55, 1.52]),
    ]
    # The margin as set by objective.equivalence_margin (the default, the paired noise of
    # one seed, is 0.0141 here: at 3 seeds these rates are not shown equivalent).
    lowest = LearningRatePhase([1e-5, 5e-5, 1e-4], tie_break="lowest", margin=0.05)
    decision = lowest.decide(outcomes, BASE, "minimize")
    assert decision.case == "lowest_equivalent"
    assert decision.params == {"learning_rate": 5e-5}
    best_mean = LearningRatePhase([1e-5, 5e-5, 1e-4], margin=0.05).decide(
        outcomes, BASE, "minimize"
    )
    assert best_mean.case == "best_mean_equivalent"
    assert best_mean.params == {"learning_rate": 1e-4}
    assert (
        "(equivalence margin 0.05; differences under 0.0179 are not told at 3 seeds; rate "
        "5e-05: equivalent, worse by 0.006667" in best_mean.reason
    )
    default = LearningRatePhase([1e-5, 5e-5, 1e-4], tie_break="lowest")
    assert default.decide(outcomes, BASE, "minimize").case == "best_mean_undecided"


def test_a_relative_margin_is_a_share_of_the_best_mean() -> None:
    """objective.equivalence_margin: "2%": 2% of the best mean (1.523 here: 0.03047), so the
    rates within 0.01 on every seed are equivalent, and the reason says where it came from."""
    outcomes = [
        outcome(0, 1e-5, [3.0, 3.1, 3.2]),
        outcome(1, 5e-5, [1.51, 1.55, 1.53]),
        outcome(2, 1e-4, [1.50, 1.55, 1.52]),
    ]
    phase = LearningRatePhase([1e-5, 5e-5, 1e-4], tie_break="lowest", margin="2%")
    decision = phase.decide(outcomes, BASE, "minimize")
    assert decision.case == "lowest_equivalent"
    assert decision.summary["equivalence_margin"] == pytest.approx(0.02 * 1.52333, rel=1e-4)
    assert "equivalence margin 0.03047 (2% of the best mean)" in decision.reason
    tighter = LearningRatePhase([1e-5, 5e-5, 1e-4], tie_break="lowest", margin="0.1%")
    assert tighter.decide(outcomes, BASE, "minimize").case == "best_mean_undecided"
    for bad in ("2", "-2%", "150%", "two percent"):
        with pytest.raises(ValueError, match="not a percentage above 0 and at most 100"):
            LearningRatePhase([1e-5, 1e-4], margin=bad)


def test_maximize_direction_for_bleu() -> None:
    outcomes = [
        outcome(0, 1e-5, [68.0, 68.4, 68.2]),
        outcome(1, 1e-4, [74.3, 74.8, 74.5]),
        outcome(2, 5e-4, [], status="diverged"),
    ]
    decision = LearningRatePhase([1e-5, 1e-4, 5e-4]).decide(outcomes, BASE, "maximize")
    assert decision.params == {"learning_rate": 1e-4}
    assert decision.case == "clear_winner"
    statuses = {row["learning_rate"]: row["status"] for row in decision.summary["table"]}
    assert statuses[5e-4] == "diverged"


def test_single_seed_is_flagged() -> None:
    outcomes = [outcome(0, 1e-5, [2.0]), outcome(1, 1e-4, [1.0])]
    decision = LearningRatePhase([1e-5, 1e-4]).decide(outcomes, BASE, "minimize")
    assert decision.case == "single_seed"
    assert decision.params == {"learning_rate": 1e-4}


def test_all_diverged_keeps_the_base_rate() -> None:
    outcomes = [outcome(0, 1e-2, [], "diverged"), outcome(1, 1e-1, [], "diverged")]
    decision = LearningRatePhase([1e-2, 1e-1]).decide(outcomes, BASE, "minimize")
    assert decision.case == "no_valid_trial"
    assert decision.params == {}
    assert "Lower the grid" in decision.reason


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="grid="):
        LearningRatePhase([1e-4])
    with pytest.raises(ValueError, match="tie_break="):
        LearningRatePhase([1e-5, 1e-4], tie_break="highest")


def test_best_at_the_top_of_the_grid_proposes_higher_rates() -> None:
    flat = ("not_learning", "not_learning", "not_learning")
    outcomes = [
        TrialOutcome(0, {"learning_rate": 1e-6}, {0: 3.0, 1: 3.1, 2: 3.05}, "ok", diagnoses=flat),
        TrialOutcome(1, {"learning_rate": 1e-5}, {0: 2.5, 1: 2.6, 2: 2.55}, "ok", diagnoses=flat),
    ]
    decision = LearningRatePhase([1e-6, 1e-5]).decide(outcomes, BASE, "minimize")
    assert decision.params == {"learning_rate": 1e-5}
    assert "does not fall (diagnosis: not learning): try rates 2-3x higher" in decision.reason
    assert decision.summary["proposal"] == {"extend_grid": [2e-5, pytest.approx(3e-5)]}
    assert decision.summary["table"][1]["diagnosis"] == "not_learning"
