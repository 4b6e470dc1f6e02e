"""Candidates together (training.candidates_together): a phase's queued points train in one
stack of adapters over one base, each still its own Optuna trial, and the run stores what a
run of one trial at a time stores (without dropout, within 1e-3)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import optuna
import pytest

from hptune import keys, run
from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _compare_runs():
    spec = importlib.util.spec_from_file_location(
        "compare_runs", ROOT / "scripts" / "compare_runs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_runs"] = module
    spec.loader.exec_module(module)
    return module


def _raw(tmp_path: Path, together: bool) -> dict:
    raw = tiny_config(tmp_path / str(together))
    raw["method"]["dropout"] = 0.0  # each adapter's values comparable with its own run's
    raw["objective"].update(seeds=2, max_seeds=2)  # no racing: the grid alone
    raw["training"].update(epochs=2, candidates_together=together, checkpoints=False)
    raw["phases"]["learning_rate"] = {"grid": [1e-3, 2e-3, 1e-2], "extend_edges": 0}
    return raw


def test_the_grid_trains_as_one_group_and_stores_what_one_at_a_time_stores(
    demo_path, tmp_path, capsys
) -> None:
    compare_runs = _compare_runs()
    stores = {}
    for together in (False, True):
        run(config_from_dict(_raw(tmp_path, together)))
        stores[together] = compare_runs.read(tmp_path / str(together) / "out" / "hptune.db")
    assert compare_runs.differences(stores[False], stores[True], 1e-3) == []
    url = f"sqlite:///{tmp_path / 'True' / 'out' / 'hptune.db'}"
    study = optuna.load_study(study_name="tiny.learning_rate", storage=url)
    grid = sorted(study.trials, key=lambda t: t.number)
    assert [t.params["learning_rate"] for t in grid] == [1e-3, 2e-3, 1e-2]
    numbers = [t.number for t in grid]
    for trial in grid:  # one stack of 3 trials x 2 seeds, each its own trial and seeds
        assert trial.user_attrs[keys.GROUP] == numbers
        assert [r["seed"] for r in trial.user_attrs[keys.RUNS]] == [0, 1]
        assert trial.state == optuna.trial.TrialState.COMPLETE
    apart = f"sqlite:///{tmp_path / 'False' / 'out' / 'hptune.db'}"
    alone = optuna.load_study(study_name="tiny.learning_rate", storage=apart)
    assert not any(keys.GROUP in t.user_attrs for t in alone.trials)


def test_the_plan_says_how_the_grid_trains(demo_path, tmp_path, capsys) -> None:
    from hptune.plan import make_plan

    on = make_plan(config_from_dict(_raw(tmp_path, True)))
    assert on.method["candidates_together"]["described"].startswith(
        "candidates: 3 rates x 2 seeds: 6 adapters over one base in 1 group;"
    )
    off = make_plan(config_from_dict(_raw(tmp_path, False)))
    assert off.method["candidates_together"]["described"] == (
        "candidates: one trial at a time (training.candidates_together: False) "
        "(training.candidates_together: auto would train its points together)"
    )


def test_candidates_together_where_adapters_cannot_stack_is_refused(demo_path, tmp_path) -> None:
    raw = _raw(tmp_path, True)
    raw["method"] = {"type": "full"}
    with pytest.raises((ConfigError, ValueError), match="candidates_together: true, but"):
        config_from_dict(raw)
