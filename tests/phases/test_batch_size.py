import optuna
import pytest

from hptune.hparams import HParams
from hptune.phases import BatchSizePhase, TrialOutcome, batch_candidates

BASE = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=8, epochs=2,
               warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip


def outcome(number: int, batch: int, values: list[float], speed: float) -> TrialOutcome:
    return TrialOutcome(number, {"batch_size": batch}, dict(enumerate(values)), "ok",
                        examples_per_second=speed)  # fmt: skip


def test_candidates_keep_the_effective_batch() -> None:
    assert batch_candidates(BASE, keep_effective_batch=True) == [1, 2, 4, 8, 16, 32]
    assert batch_candidates(BASE, keep_effective_batch=False)[-1] == 256


def test_suggest_keeps_batch_times_accumulation() -> None:
    phase = BatchSizePhase(BASE, predict_bytes=lambda b: b * 10.0, memory_limit_bytes=200.0,
                           safety_margin=1.0)  # fmt: skip
    study = optuna.create_study(sampler=phase.create_sampler())
    trial = study.ask()
    hp = phase.suggest(trial, BASE)
    assert (hp.batch_size, hp.gradient_accumulation_steps) == (16, 2)  # 32 needs 320 > 200
    assert hp.effective_batch_size == BASE.effective_batch_size


def test_free_effective_batch_keeps_the_accumulation() -> None:
    phase = BatchSizePhase(BASE, keep_effective_batch=False, candidates=[8, 64])
    hp = phase.suggest(optuna.create_study(sampler=phase.create_sampler()).ask(), BASE)
    assert (hp.batch_size, hp.gradient_accumulation_steps) == (64, 8)


def test_candidates_must_divide_the_effective_batch() -> None:
    with pytest.raises(ValueError, match="below the effective batch 32 and do not divide it"):
        BatchSizePhase(BASE, candidates=[3, 4])


def test_budget_counts_untried_fitting_batches_and_not_ooms() -> None:
    phase = BatchSizePhase(BASE, n_trials=3, predict_bytes=lambda b: b * 10.0,
                           memory_limit_bytes=85.0, safety_margin=1.0)  # fmt: skip
    study = optuna.create_study(sampler=phase.create_sampler())
    assert phase.n_remaining(study.get_trials()) == 3  # 8, 4, 2, 1 fit: budget of 3
    trial = study.ask()
    assert phase.suggest(trial, BASE).batch_size == 8
    trial.set_user_attr("status", "oom")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert phase.n_remaining(study.get_trials()) == 3  # the OOM did not use the budget


def test_the_fastest_equivalent_batch_wins() -> None:
    outcomes = [  # the same seed pattern, each off by 0.01 on a different third of the seeds
        outcome(0, 8, [2.01, 2.09, 2.05, 2.04, 2.07, 2.02], speed=600.0),
        outcome(1, 16, [2.00, 2.11, 2.04, 2.03, 2.09, 2.01], speed=900.0),
        outcome(2, 4, [1.99, 2.10, 2.06, 2.02, 2.08, 2.03], speed=300.0),
    ]
    decision = BatchSizePhase(BASE).decide(outcomes, BASE, "minimize")
    assert decision.case == "fastest_equivalent"
    assert decision.params == {"batch_size": 16, "gradient_accumulation_steps": 2}
    assert "same performance, faster" in decision.reason
    # the default margin: the paired noise of one seed (0.0155), below one configuration's
    # seed std (0.04)
    assert decision.summary["equivalence_margin"] == pytest.approx(0.0155, abs=1e-4)
    assert decision.summary["seed_noise"] == pytest.approx(0.0408, abs=1e-4)


def test_at_three_seeds_the_default_margin_leaves_equivalence_open_and_says_how_many() -> None:
    outcomes = [
        outcome(0, 16, [2.01, 2.10, 2.05], speed=900.0),
        outcome(1, 8, [2.00, 2.10, 2.05], speed=600.0),
        outcome(2, 4, [2.01, 2.11, 2.05], speed=300.0),
    ]
    decision = BatchSizePhase(BASE).decide(outcomes, BASE, "minimize")
    assert decision.case == "best_mean_undecided" and decision.params["batch_size"] == 8
    assert decision.summary["seeds_for_equivalence"] == 7
    assert "are not told at 3 seeds, equivalence needs about 7" in decision.reason


def test_a_faster_batch_not_told_apart_does_not_win_on_speed() -> None:
    outcomes = [
        outcome(0, 16, [2.10, 2.02, 2.15], speed=900.0),  # mean 2.09: not shown equivalent
        outcome(1, 8, [2.00, 2.10, 2.05], speed=600.0),
    ]
    decision = BatchSizePhase(BASE).decide(outcomes, BASE, "minimize")
    assert decision.case == "best_mean_undecided"
    assert decision.params["batch_size"] == 8
    assert "batch 16: undecided, worse by 0.04" in decision.reason


def test_a_better_batch_beyond_noise_wins_even_if_slower() -> None:
    outcomes = [
        outcome(0, 16, [2.52, 2.60, 2.55], speed=900.0),
        outcome(1, 4, [2.00, 2.10, 2.05], speed=300.0),
    ]
    decision = BatchSizePhase(BASE).decide(outcomes, BASE, "minimize")
    assert decision.case == "best"
    assert decision.params["batch_size"] == 4
    assert "batch 16: worse, worse by 0.5" in decision.reason


def test_no_finished_batch_keeps_the_incoming_one() -> None:
    oom = TrialOutcome(0, {"batch_size": 32}, {}, "oom")
    decision = BatchSizePhase(BASE).decide([oom], BASE, "minimize")
    assert decision.case == "no_valid_trial" and decision.params == {}
    assert decision.summary["table"][0]["status"] == "oom"


def test_candidates_go_above_the_effective_batch_up_to_the_largest_that_fits() -> None:
    base = BASE.replace(batch_size=16, gradient_accumulation_steps=1)  # an 80 GB preset
    assert batch_candidates(base, keep_effective_batch=True, largest_fitting=71,
                            n_train=2000) == [1, 2, 4, 8, 16, 32, 64, 71]  # fmt: skip
    # the caps: at most 256, and 8 optimizer steps per epoch (1000 examples: at most 125)
    assert batch_candidates(base, keep_effective_batch=True, largest_fitting=5000,
                            n_train=1000) == [1, 2, 4, 8, 16, 32, 64]  # fmt: skip
    assert batch_candidates(base, keep_effective_batch=True, largest_fitting=12) == [
        1, 2, 4, 8, 16]  # fmt: skip


def test_a_batch_above_the_effective_batch_trains_without_accumulation() -> None:
    base = BASE.replace(batch_size=16, gradient_accumulation_steps=1)
    phase = BatchSizePhase(base, candidates=[8, 16, 32, 64], n_trials=3,
                           predict_bytes=lambda b: b * 10.0, memory_limit_bytes=700.0,
                           safety_margin=1.0)  # fmt: skip
    # the incoming batch is queued first, so the comparison with it decides
    assert phase.initial_params(base) == [{"batch_size": 16}]
    study = optuna.create_study(sampler=phase.create_sampler())
    study.enqueue_trial(phase.initial_params(base)[0])
    proposed = [phase.suggest(study.ask(), base) for _ in range(3)]
    assert [(hp.batch_size, hp.gradient_accumulation_steps) for hp in proposed] == [
        (16, 1), (64, 1), (32, 1)]  # fmt: skip
    assert proposed[1].effective_batch_size == 64


def test_a_larger_batch_that_trains_worse_is_not_chosen() -> None:
    base = BASE.replace(batch_size=16, gradient_accumulation_steps=1)
    phase = BatchSizePhase(base, candidates=[16, 32, 64], margin=0.02, rate_factors=[1.0])
    worse = phase.decide([
        outcome(0, 16, [2.00, 2.10, 2.05], speed=300.0),
        outcome(1, 64, [2.20, 2.31, 2.24], speed=900.0),
    ], base, "minimize")  # fmt: skip
    assert worse.params == {"batch_size": 16, "gradient_accumulation_steps": 1}
    same = phase.decide([
        outcome(0, 16, [2.000, 2.100, 2.050], speed=300.0),
        outcome(1, 64, [2.001, 2.101, 2.051], speed=900.0),
    ], base, "minimize")  # fmt: skip
    assert same.params == {"batch_size": 64, "gradient_accumulation_steps": 1}
    assert same.case == "fastest_equivalent"
    assert "effective batch grows from 16 to 64" in same.reason


def test_no_incoming_batch_is_queued_when_nothing_above_it_fits() -> None:
    phase = BatchSizePhase(BASE, predict_bytes=lambda b: b * 10.0, memory_limit_bytes=200.0)
    assert phase.initial_params(BASE) == []


def rated(number: int, batch: int, rate: float, values: list[float], speed: float) -> TrialOutcome:
    return TrialOutcome(number, {"batch_size": batch, "learning_rate": rate},
                        dict(enumerate(values)), "ok", examples_per_second=speed)  # fmt: skip


def test_a_batch_that_grows_the_effective_batch_is_probed_at_the_other_rates() -> None:
    """Batch 64 over an effective batch of 16 trains at the incoming rate when the sampler
    proposes it, then at x0.5 and x2 (the local set); the incoming batch keeps its rate, tuned
    under it, and a batch within the effective batch changes nothing the rate depends on."""
    base = BASE.replace(batch_size=16, gradient_accumulation_steps=1)
    phase = BatchSizePhase(base, candidates=[8, 16, 64], n_trials=3)
    study = optuna.create_study(sampler=phase.create_sampler())
    study.enqueue_trial(phase.initial_params(base)[0])
    incoming, larger, smaller = (study.ask() for _ in range(3))
    assert phase.suggest(incoming, base).learning_rate == base.learning_rate
    assert "learning_rate" not in incoming.params
    assert phase.suggest(larger, base).batch_size == 64
    assert larger.params["learning_rate"] == base.learning_rate  # the sampler's default
    assert phase.suggest(smaller, base).batch_size == 8 and "learning_rate" not in smaller.params
    outcomes = [rated(1, 64, base.learning_rate, [2.0], 900.0),
                outcome(0, 16, [2.0], 300.0), outcome(2, 8, [2.0], 200.0)]  # fmt: skip
    assert phase.rate_probes(outcomes) == [
        {"batch_size": 64, "learning_rate": base.learning_rate * 0.5},
        {"batch_size": 64, "learning_rate": base.learning_rate * 2.0},
    ]
    assert BatchSizePhase(base, candidates=[8, 16, 64], rate_factors=[1.0]).rate_probes(
        outcomes) == []  # fmt: skip


def test_the_larger_batch_wins_at_its_own_best_rate() -> None:
    """At the incoming rate batch 64 trains worse; at twice the rate it matches batch 16 and
    is three times faster: it wins with that rate, and the decision says so."""
    base = BASE.replace(batch_size=16, gradient_accumulation_steps=1)
    phase = BatchSizePhase(base, candidates=[16, 64], margin=0.02)
    rate = base.learning_rate
    decision = phase.decide([
        outcome(0, 16, [2.000, 2.100, 2.050], speed=300.0),
        rated(1, 64, rate, [2.200, 2.310, 2.240], speed=900.0),
        rated(2, 64, rate * 0.5, [2.400, 2.510, 2.440], speed=900.0),
        rated(3, 64, rate * 2, [2.001, 2.101, 2.051], speed=900.0),
    ], base, "minimize")  # fmt: skip
    assert decision.params == {"batch_size": 64, "gradient_accumulation_steps": 1,
                               "learning_rate": rate * 2}  # fmt: skip
    assert decision.case == "fastest_equivalent"
    assert "re-tuned for it: rate 0.0002 (x2) won" in decision.reason
    won = {r["candidate"]: r["factor"] for r in decision.summary["rates_won"]}
    assert won == {"batch 16": 1.0, "batch 64": 2.0}
    assert {row["learning_rate"] for row in decision.summary["table"]} == {rate, rate * 0.5,
                                                                          rate * 2}  # fmt: skip


def test_the_plan_names_the_rate_probes_only_where_a_batch_may_change_the_effective_batch(
    tmp_path,
) -> None:
    from hptune.config import config_from_dict
    from tests.conftest import tiny_config

    base = BASE.replace(batch_size=4, gradient_accumulation_steps=4)  # effective 16
    raw = tiny_config(tmp_path)

    def what(**options) -> str:
        raw["phases"] = {"run": ["batch_size"], "batch_size": options}
        return BatchSizePhase.planned(config_from_dict(raw), base, 100).what

    probes = "a batch that changes it also at the learning rate x0.5, x2, when run"
    assert probes in what()  # a larger batch may fit: known once the memory model runs
    assert probes not in what(candidates=[4, 16])  # given, within the effective batch
    assert probes in what(candidates=[4, 32])
    assert probes not in what(larger_batches=False)
    assert probes not in what(rate_factors=[1.0])
