"""Edges explored: a phase whose best lies at an edge of its values tries past it before it
decides (``hptune.pipeline._edges``), with fake objectives on a real SQLite storage."""

from __future__ import annotations

import math

import optuna

from hptune import keys
from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.phases import EpochsPhase, LearningRatePhase, Phase
from hptune.pipeline import work_through_queue
from hptune.storage import open_storage

BASE = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=1, epochs=2,
               warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip


def _run(tmp_path, phase: Phase, value) -> tuple[optuna.Study, object]:
    """Work through ``phase`` with seed values ``value(hp) + noise`` on seeds 0-2, no racing."""
    config = config_from_dict({"name": "edges", "model": {"path": "demo://model"},
                               "data": {"train": "t.jsonl", "validation": "v.jsonl"},
                               "objective": {"seeds": 3, "max_seeds": 3},
                               "output_dir": str(tmp_path)})  # fmt: skip
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name=f"edges.{phase.name}",
                                sampler=phase.create_sampler())  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        hp = phase.suggest(trial, BASE)
        v = value(hp)
        if math.isnan(v):
            keys.set_status(trial, TrialStatus.DIVERGED)
            raise optuna.TrialPruned("diverged")
        seeds = {str(s): v + 0.1 * s + 0.002 * math.sin(97 * v + s) for s in range(3)}
        trial.set_user_attr(keys.SEED_VALUES, seeds)
        keys.set_status(trial, TrialStatus.OK)
        return sum(seeds.values()) / 3

    return study, work_through_queue(config, storage, study, phase, BASE, objective)


def _log_distance(best: float):
    return lambda hp: 2.0 + (math.log10(hp.learning_rate) - math.log10(best)) ** 2


def test_a_grid_too_low_is_extended_until_the_best_rate_is_inside(tmp_path) -> None:
    phase = LearningRatePhase([2.5e-5, 5e-5])  # the best rate, 1.2e-4, lies above
    study, result = _run(tmp_path, phase, _log_distance(1.2e-4))
    rates = [t.params["learning_rate"] for t in study.trials]
    assert rates[2:] == [1e-4, 2e-4]  # x2 past the top, twice: 1e-4 is then inside
    assert result.decision.params == {"learning_rate": 1e-4}
    assert "tried past the grid's edge, as the best lay there: 0.0001, 0.0002" in (
        result.decision.reason
    )
    assert "add" not in result.decision.reason  # interior: no advice to widen the grid


def test_the_bottom_edge_is_extended_down_and_at_most_twice(tmp_path) -> None:
    phase = LearningRatePhase([1e-3, 2e-3])  # the best rate, 1e-5, lies far below
    study, result = _run(tmp_path, phase, _log_distance(1e-5))
    assert [t.params["learning_rate"] for t in study.trials][2:] == [5e-4, 2.5e-4]
    assert result.decision.params == {"learning_rate": 2.5e-4}


def test_no_rate_is_tried_past_one_that_diverged(tmp_path) -> None:
    phase = LearningRatePhase([2.5e-5, 5e-5, 1e-4])

    def value(hp: HParams) -> float:  # better and better up to 5e-5, then divergence
        return math.nan if hp.learning_rate > 6e-5 else _log_distance(1e-3)(hp)

    study, result = _run(tmp_path, phase, value)
    assert len(study.trials) == 3
    assert result.decision.params == {"learning_rate": 5e-5}


def test_an_epochs_range_too_short_ends_with_an_interior_count(tmp_path) -> None:
    phase = EpochsPhase((2, 4), pruning=False)  # best at 6 epochs, then overfitting

    def value(hp: HParams) -> float:
        return 2.0 + 0.05 * (hp.epochs - 6) ** 2

    study, result = _run(tmp_path, phase, value)
    assert sorted(t.params["epochs"] for t in study.trials) == [2, 3, 4, 6, 9]
    assert result.decision.params == {"epochs": 6}
    assert "tried past the range's top, as the best lay there: 6 epochs, 9 epochs" in (
        result.decision.reason
    )


def test_extension_off_keeps_the_configured_values(tmp_path) -> None:
    phase = LearningRatePhase([2.5e-5, 5e-5], extend_edges=0)
    study, result = _run(tmp_path, phase, _log_distance(1.2e-4))
    assert len(study.trials) == 2 and result.decision.params == {"learning_rate": 5e-5}
    assert "add 0.0001 and 0.00015 to phases.learning_rate.grid" in result.decision.reason


def test_a_lone_rate_below_diverged_ones_is_extended_down(tmp_path) -> None:
    """Only the lowest rate trains, every higher one diverges: the phase tries below it."""
    phase = LearningRatePhase([1e-3, 2e-3, 4e-3])

    def value(hp: HParams) -> float:
        return math.nan if hp.learning_rate > 1.5e-3 else _log_distance(1e-4)(hp)

    study, result = _run(tmp_path, phase, value)
    assert [t.params["learning_rate"] for t in study.trials][3:] == [5e-4, 2.5e-4]
    assert result.decision.params == {"learning_rate": 2.5e-4}
