"""Rate probes (``hptune.pipeline._probes``): a batch that grows the effective batch is tried
at the other rates of the local set once the batches are done; under a compute budget, only
those the room pays for."""

from __future__ import annotations

import optuna

from hptune import keys
from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.ledger import BudgetLedger
from hptune.phases import BatchSizePhase
from hptune.pipeline import work_through_queue
from hptune.storage import open_storage
from tests.pipeline._trained import record_trained

BASE = HParams(learning_rate=1e-3, batch_size=4, gradient_accumulation_steps=1, epochs=2,
               warmup_ratio=0.0, weight_decay=0.01)  # fmt: skip


def run(tmp_path, budget: int | None) -> tuple[optuna.Study, object]:
    raw = {"name": "probe", "model": {"path": "demo://model"},
           "data": {"train": "t.jsonl", "validation": "v.jsonl"},
           "objective": {"seeds": 3, "max_seeds": 3}, "output_dir": str(tmp_path),
           "phases": {"run": ["batch_size"]}}  # fmt: skip
    if budget is not None:
        raw["budget"] = {"seed_epochs": budget}
    config = config_from_dict(raw)
    phase = BatchSizePhase(BASE, candidates=[4, 8], n_trials=2)
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name="probe.batch_size",
                                sampler=phase.create_sampler())  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        hp = phase.suggest(trial, BASE)
        mean = 2.0 + abs(hp.learning_rate - 2e-3) * 100 + (0.05 if hp.batch_size == 4 else 0)
        return record_trained(trial, hp, {str(s): mean + 0.01 * s for s in range(3)})

    ledger = None if budget is None else BudgetLedger(config, storage, 100, has_test=False)
    return study, work_through_queue(config, storage, study, phase, BASE, objective,
                                     ledger=ledger)  # fmt: skip


def _probes(study: optuna.Study) -> list[float]:
    return [t.params["learning_rate"] for t in study.trials if keys.RATE_PROBE in t.user_attrs]


def test_without_a_budget_every_probe_runs_and_the_best_rate_wins(tmp_path) -> None:
    study, result = run(tmp_path, budget=None)
    assert _probes(study) == [5e-4, 2e-3]
    assert result.decision.params["learning_rate"] == 2e-3


def test_a_budget_pays_for_the_probes_its_room_holds_lowest_rate_first(tmp_path) -> None:
    """The two batches cost 12 seed-epochs (3 seeds x 2 epochs each), a probe 6 more."""
    study, result = run(tmp_path, budget=12 + 6)
    assert _probes(study) == [5e-4]
    assert "learning_rate" not in result.decision.params  # batch 8 kept the incoming rate
    assert "the learning rate re-tuned for it: rate 0.001 (x1) won" in result.decision.reason
    study, result = run(tmp_path / "none", budget=12 + 5)
    assert _probes(study) == []
    assert "at the incoming learning rate (no room to re-tune it)" in result.decision.reason
    trained = sum(3 * 2 for _ in study.trials)
    assert trained <= 12 + 5
