"""The LoRA rank phase: each rank's adapter trained on the same seeds, alpha by its rule,
the smallest rank equivalent to the best chosen, and the export's adapter at that rank."""

from __future__ import annotations

from pathlib import Path

import pytest

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.phases import LoraRankPhase, TrialOutcome
from hptune.phases._lora_rank import alpha_for
from hptune.train import make_runner

BASE = HParams(learning_rate=5e-3, batch_size=16, gradient_accumulation_steps=1, epochs=1,
               warmup_ratio=0.0, weight_decay=0.0)  # fmt: skip


def test_alpha_keeps_the_scale_or_stays_fixed() -> None:
    assert [alpha_for(r, "same_scale", 8, 16) for r in (4, 8, 16, 32)] == [8, 16, 32, 64]
    assert [alpha_for(r, "fixed", 8, 16) for r in (4, 32)] == [16, 16]
    assert alpha_for(1, "same_scale", 16, 8) == 1  # never under 1


def test_a_run_trains_the_rank_and_alpha_its_hyperparameters_name(tiny_config_dict) -> None:
    from peft.tuners.lora import LoraLayer

    runner = make_runner(config_from_dict(tiny_config_dict))
    model = runner.load_run_model(BASE.replace(lora_r=4, lora_alpha=12))
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert layers and {(m.r["default"], m.scaling["default"]) for m in layers} == {(4, 3.0)}
    runner.release_run_model(model)
    plain = runner.load_run_model(BASE)  # the method's rank, on the same shared base
    assert {m.r["default"] for m in plain.modules() if isinstance(m, LoraLayer)} == {8}


def _outcome(number: int, rank: int, values: list[float]) -> TrialOutcome:
    return TrialOutcome(number=number, params={"lora_r": rank}, status=TrialStatus.OK,
                        seed_values=dict(enumerate(values)))  # fmt: skip


def test_the_smallest_rank_equivalent_to_the_best_wins() -> None:
    phase = LoraRankPhase([4, 8, 16], margin=0.5)
    outcomes = [_outcome(0, 4, [2.00, 2.10, 1.90]), _outcome(1, 8, [1.98, 2.09, 1.88]),
                _outcome(2, 16, [2.40, 2.50, 2.30])]  # fmt: skip
    decision = phase.decide(outcomes, BASE, "minimize")
    assert decision.case == "smallest_equivalent"
    assert decision.params == {"lora_r": 4, "lora_alpha": 8}
    assert decision.apply(BASE).lora_r == 4


def test_searched_alphas_make_a_grid_and_the_smallest_rank_takes_its_best_alpha() -> None:
    phase = LoraRankPhase([4, 8], alphas=[32, 8], margin=0.5)
    grid = phase.initial_params(BASE)
    assert grid == [{"lora_r": r, "lora_alpha": a} for r in (4, 8) for a in (8, 32)]
    assert phase.n_trials() == 4

    def outcome(number: int, rank: int, alpha: int, values: list[float]) -> TrialOutcome:
        return TrialOutcome(number=number, params={"lora_r": rank, "lora_alpha": alpha},
                            status=TrialStatus.OK, seed_values=dict(enumerate(values)))  # fmt: skip

    outcomes = [outcome(0, 4, 8, [2.10, 2.20, 2.00]), outcome(1, 4, 32, [1.99, 2.10, 1.89]),
                outcome(2, 8, 8, [1.98, 2.09, 1.88]),
                outcome(3, 8, 32, [2.40, 2.50, 2.30])]  # fmt: skip
    decision = phase.decide(outcomes, BASE, "minimize")
    assert decision.case == "smallest_equivalent"
    assert decision.params == {"lora_r": 4, "lora_alpha": 32}  # rank 4's better alpha
    assert "rank 4 alpha 32" in decision.reason
    assert [(row["lora_r"], row["lora_alpha"]) for row in decision.summary["table"]] == [
        (4, 8), (4, 32), (8, 8), (8, 32)]  # fmt: skip
    assert decision.summary["alpha_rule"] == "searched"


def test_the_grid_of_ranks_and_alphas_is_counted_through_real_trials() -> None:
    import optuna

    phase = LoraRankPhase([4, 8], alphas=[8, 32])
    study = optuna.create_study()
    for params in phase.initial_params(BASE)[:3]:
        study.enqueue_trial(params)
    for _ in range(3):
        trial = study.ask()
        hp = phase.suggest(trial, BASE)
        assert hp.lora_alpha == trial.params["lora_alpha"]
        study.tell(trial, 1.0)
    assert phase.n_remaining(study.trials) == 1  # rank 8 with alpha 32 is left


def test_alphas_are_checked(tiny_config_dict) -> None:
    tiny_config_dict["phases"]["lora_rank"] = {"alphas": [16, 16]}
    with pytest.raises(ConfigError, match="different alphas"):
        config_from_dict(tiny_config_dict)


def test_lora_rank_with_full_fine_tuning_is_refused(tiny_config_dict) -> None:
    tiny_config_dict["method"]["type"] = "full"
    tiny_config_dict["phases"]["run"] = ["baseline", "lora_rank"]
    with pytest.raises(ConfigError, match="lora_rank tunes a LoRA adapter's rank"):
        config_from_dict(tiny_config_dict)


def test_the_phase_end_to_end_decides_a_rank_and_exports_its_adapter(tiny_config_dict) -> None:
    from peft import LoraConfig

    from hptune._export import exported_config
    from hptune.pipeline import tune

    ranks = {"ranks": [2, 8], "rate_factors": [1.0, 2.0]}  # two rates: less CI time
    tiny_config_dict["phases"] = {"run": ["baseline", "lora_rank"], "lora_rank": ranks}
    config = config_from_dict(tiny_config_dict)
    result = tune(config)
    decision = result.phases[-1].decision
    assert decision.phase == "lora_rank" and decision.case != "no_valid_trial"
    rank = decision.params["lora_r"]
    assert rank in (2, 8) and decision.params["lora_alpha"] == 2 * rank
    # each rank at x1 and x2 the incoming rate (its rate re-tuned)
    assert [row["lora_r"] for row in decision.summary["table"]] == [2, 2, 8, 8]
    import optuna

    study = optuna.load_study(study_name="tiny.lora_rank", storage=config.storage_url)
    hparams = [t.user_attrs["hparams"] for t in study.trials]
    trained = sorted({(h["lora_r"], h["lora_alpha"]) for h in hparams})
    assert trained == [(2, 4), (8, 16)]  # each rank trained with alpha by the rule
    rates = sorted({h["learning_rate"] for h in hparams})
    assert len(rates) == 2 and rates[1] / rates[0] == pytest.approx(2)
    assert hparams[0]["lora_r"] == 8 and hparams[0]["learning_rate"] == rates[0]  # reference
    won = exported_config(config)["training_args"]["learning_rate"]
    assert won == decision.params.get("learning_rate", rates[0])
    assert f"won at rate {won:.3g}" in decision.reason
    from hptune._export import final_hparams

    exported = final_hparams(config)[1]["lora_rank"]["rates_won"]  # each rank's best rate
    assert sorted(r["candidate"] for r in exported) == ["rank 2", "rank 8"]
    lora = exported_config(config)["lora_config"]
    assert (lora["r"], lora["lora_alpha"]) == (rank, 2 * rank)
    assert LoraConfig(**lora).r == rank
    from hptune.report import write_report

    (markdown,) = write_report(config, tiny_config_dict["output_dir"] + "/run.md")
    text = Path(markdown).read_text()
    assert "Extra: LoRA rank" in text and "LoRA rank" in text.split("Extra: LoRA rank", 1)[1]


def test_each_rank_is_tried_at_its_own_rates_and_wins_at_its_best() -> None:
    """With the incoming rate given, every rank runs at x0.5, x1 and x2 (the configured rank
    8 at its own rate first, its other rates last); rank 4 trains as well as rank 8 only at
    twice the rate: it wins, with that rate."""
    phase = LoraRankPhase([4, 8], rate=BASE.learning_rate, margin=0.5)
    rate = BASE.learning_rate
    assert phase.initial_params(BASE) == [
        {"lora_r": 8, "learning_rate": rate},
        {"lora_r": 4, "learning_rate": rate}, {"lora_r": 4, "learning_rate": rate * 0.5},
        {"lora_r": 4, "learning_rate": rate * 2},
        {"lora_r": 8, "learning_rate": rate * 0.5}, {"lora_r": 8, "learning_rate": rate * 2},
    ]  # fmt: skip

    def outcome(number: int, rank: int, factor: float, values: list[float]) -> TrialOutcome:
        return TrialOutcome(number=number, params={"lora_r": rank, "learning_rate": rate * factor},
                            status=TrialStatus.OK, seed_values=dict(enumerate(values)))  # fmt: skip

    decision = phase.decide([
        outcome(0, 8, 1, [2.00, 2.10, 1.90]), outcome(1, 4, 1, [2.60, 2.70, 2.50]),
        outcome(2, 4, 0.5, [3.00, 3.10, 2.90]), outcome(3, 4, 2, [2.01, 2.11, 1.91]),
    ], BASE, "minimize")  # fmt: skip
    assert decision.params == {"lora_r": 4, "lora_alpha": 8, "learning_rate": rate * 2}
    assert "rank 4 won at rate 0.01 (x2)" in decision.reason
    won = {r["candidate"]: r["factor"] for r in decision.summary["rates_won"]}
    assert won == {"rank 8": 1.0, "rank 4": 2.0}
    assert LoraRankPhase([4, 8], rate=rate, rate_factors=[1.0]).n_trials() == 2
