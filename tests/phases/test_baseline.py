import optuna

from hptune.hparams import HParams
from hptune.phases import BaselinePhase, Decision, TrialOutcome

BASE = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=1, epochs=1,
               warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip


def test_baseline_runs_the_preset_once() -> None:
    phase = BaselinePhase()
    assert phase.n_trials() == 1
    trial = optuna.create_study().ask()
    assert phase.suggest(trial, BASE) == BASE
    assert trial.params == {}


def test_baseline_decision_records_spread_and_round_trips() -> None:
    decision = BaselinePhase().decide(
        [TrialOutcome(0, {}, {0: 1.0, 1: 2.0, 2: 3.0}, "ok")], BASE, "minimize"
    )
    assert decision.params == {} and decision.value == 2.0
    assert decision.summary["std"] == 1.0
    assert Decision.from_json(decision.to_json()) == decision
    assert decision.apply(BASE) == BASE


def test_baseline_that_diverged() -> None:
    decision = BaselinePhase().decide([TrialOutcome(0, {}, {}, "diverged")], BASE, "minimize")
    assert decision.case == "baseline_failed"
    assert decision.value is None
