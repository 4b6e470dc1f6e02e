"""The search suite's machinery on synthetic tables whose truth is known (no training): the
design's cells, prefix runs, snapping onto a fractional design, the seed splits, the
statistics-free coordinate search, the race's paired test and the calibration's rates."""

import json
import math
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "search"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import build_table  # noqa: E402
import searchers  # noqa: E402
import table as tables  # noqa: E402

GRID = [
    {"learning_rate": [0.001, 0.01, 0.1], "scheduler": ["constant_with_warmup"],
     "warmup_ratio": [0.0], "epochs": [2, 4]},
    {"learning_rate": [0.001, 0.01, 0.1], "scheduler": ["linear"], "warmup_ratio": [0.1],
     "epochs": [4]},
]  # fmt: skip


def loss(cell: dict, seed: int, epoch: int) -> float:
    """Best at lr 0.01, linear, 4 epochs; seed noise 0.1 shared by every cell on a seed, and
    0.05 of each cell's own (a shift alone would leave the decision rules no noise)."""
    rate = abs(math.log10(cell["learning_rate"]) + 2)  # 0 at 0.01
    shape = 0.3 if cell["scheduler"] == "linear" else 0.0
    own = random.Random(f"{cell['learning_rate']}-{cell['scheduler']}-{seed}-{epoch}")
    return (3.0 + rate - 0.2 * epoch - shape * (epoch == 4) + 0.1 * random.Random(seed).gauss(0, 1)
            + 0.05 * own.gauss(0, 1))  # fmt: skip


def synthetic(seeds: int = 8, missing: tuple = ()) -> tables.Table:
    runs = {}
    for cell in tables.configurations(GRID):
        for seed in range(seeds):
            if (cell["learning_rate"], cell["epochs"], seed) in missing:
                continue
            epochs = [{"epoch": e, "train_loss": 1.0, "eval_loss": loss(cell, seed, e),
                       "score": None, "learning_rate": cell["learning_rate"]}
                      for e in range(1, cell["epochs"] + 1)]  # fmt: skip
            runs[tables.key(cell, seed)] = {"seed": seed, "epochs": epochs, "diverged": False}
    config = {"objective": {"metric": "eval_loss"}, "training": {"batch_size": 4}}
    start = {"learning_rate": 0.1, "scheduler": "constant_with_warmup", "warmup_ratio": 0.0,
             "epochs": 2}  # fmt: skip
    return tables.Table({"config": config, "grid": GRID, "runs": runs, "fixed": start,
                         "start": start})  # fmt: skip


def test_a_fractional_design_has_only_its_cells_and_shares_prefix_runs() -> None:
    cells = tables.configurations(GRID)
    assert len(cells) == 9  # 3 rates x (2 constant + 1 linear)
    jobs = build_table.jobs(cells)
    # A constant rate is trained once at 4 epochs and read at 2; linear runs stand alone.
    assert len(jobs) == 6
    constant = [(run, group) for run, group in jobs if run["scheduler"] != "linear"]
    assert all(run["epochs"] == 4 and len(group) == 2 for run, group in constant)


def test_snapping_finds_the_nearest_existing_cell() -> None:
    table = synthetic()
    # cosine and 3 epochs are not in the grid; linear exists only at 4 epochs.
    assert table.snap({"learning_rate": 0.012, "scheduler": "linear", "warmup_ratio": 0.1,
                       "epochs": 2})["epochs"] == 4  # fmt: skip
    near = table.snap({"learning_rate": 0.05, "scheduler": "constant_with_warmup",
                       "warmup_ratio": 0.0, "epochs": 2})  # fmt: skip
    assert near["learning_rate"] == 0.1  # log scale: 0.05 is nearer 0.1 than 0.01
    far = {**near, "learning_rate": 1e-9}
    assert table.snap(far)["learning_rate"] == 0.001


def test_the_truth_the_noise_unit_and_a_cell_missing_a_seed() -> None:
    table = synthetic()
    assert table.best_cell == {"learning_rate": 0.01, "scheduler": "linear",
                               "warmup_ratio": 0.1, "epochs": 4}  # fmt: skip
    assert table.regret(table.best_cell) == 0
    assert 0.05 < table.sigma < 0.2
    partial = synthetic(missing=((0.1, 4, 3),))
    assert len(partial.cells) == 7 and partial.missing == 2  # constant and linear at 4


def test_seed_splits_are_distinct_halves() -> None:
    splits = searchers.seed_splits(synthetic(), 50)
    assert all(len(seen) == 4 and sorted(seen + unseen) == list(range(8))
               for seen, unseen in splits)  # fmt: skip
    assert len({tuple(sorted(seen)) for seen, _ in splits}) == 50  # C(8, 4) = 70 to draw from


def test_the_coordinate_search_follows_the_phases_and_keeps_to_its_budget() -> None:
    table = synthetic()
    found = searchers.coordinate_search(table, [0, 1, 2], limit=None)
    assert found.choice == table.best_cell
    # learning rate: 3 cells x 2 epochs x 3 seeds; epochs: one more cell x 4 x 3; then the
    # schedule: linear at 4 epochs (its 4-epoch constant twin is already trained).
    assert found.used == 3 * 2 * 3 + 4 * 3 + 4 * 3
    cut = searchers.coordinate_search(table, [0, 1, 2], limit=20)
    assert cut.used <= 20 and cut.choice != table.best_cell


def test_the_hf_space_reaches_every_rate_of_the_table() -> None:
    optuna = pytest.importorskip("optuna")
    table = synthetic()
    suggest = searchers.hf_default_space(table, [0, 1])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rates = {suggest(study.ask())[0]["learning_rate"] for _ in range(60)}
    assert rates == {0.001, 0.01, 0.1}  # mapped in log space, not snapped to one end


def test_the_paired_test_says_nothing_of_equal_regrets() -> None:
    import race

    assert race.wilcoxon([0.0, 1.0, 2.0], [0.0, 1.0, 2.0]) is None
    assert race.wilcoxon([0.0] * 12, [1.0 + i / 10 for i in range(12)]) < 0.01


@pytest.mark.parametrize("rule", ["phases", "model"])
def test_calibration_measures_hptunes_rule_on_equal_candidates(rule, monkeypatch) -> None:
    import calibration

    monkeypatch.setitem(calibration.RULE, "name", rule)
    table = synthetic()
    table.path = "synthetic.json"
    rates = calibration.equal_candidates(table, 300, 4, 3, relabel=True, rng=random.Random(0))
    worse = rates["worse_per_comparison"]
    assert worse["n"] == 900 and 0 <= worse["rate"] < 0.5 and worse["se"] > 0
    pair = calibration.separated_pair(table, 200, 40.0, 3, random.Random(0))
    assert pair["worse"]["rate"] > 0.9  # 40 sigma apart: the rule must see it


def test_calibration_measures_the_pruner_and_the_epochs_it_saves() -> None:
    import calibration

    table = synthetic()
    far = calibration.pruner_rate(table, 6, 40.0, 2, 3, random.Random(0))
    assert far["n"] == 6 and far["rate"] == 1.0  # 40 sigma behind: always pruned
    assert 0.3 < far["epochs_saved"] < 1.0  # stopped after its first seed or two
    equal = calibration.pruner_rate(table, 6, 0.0, 2, 3, random.Random(0))
    assert equal["epochs_saved"] <= far["epochs_saved"]


def test_a_table_on_disk_round_trips(tmp_path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(synthetic().raw))
    loaded = tables.Table.load(path)
    assert loaded.path == str(path) and loaded.truths == synthetic().truths


def test_the_race_config_sets_each_phase_to_the_tables_grid(tmp_path) -> None:
    import race
    import yaml

    task = ROOT / "benchmarks" / "search" / "tasks" / "lora_loss.yaml"
    table = synthetic()
    table.raw["config"] = yaml.safe_load(task.read_text())
    table.raw["config_dir"] = str(task.parent)
    config = race.race_config(table, tmp_path, 3, 4, sampler_seed=7, budget=120)
    # No batch or weight decay in this grid: the batch phase is left out, the rest is the grid.
    assert config.phases.run == ["baseline", "learning_rate", "epochs", "regularization"]
    assert config.phases.learning_rate.grid == [0.001, 0.01, 0.1]
    assert config.phases.epochs.range == (2, 4)
    # the table has no run past its grid: no edge extension
    assert config.phases.learning_rate.extend_edges == config.phases.epochs.extend_edges == 0
    regularization = config.phases.regularization
    assert regularization.warmup_ratio == (0.001, 0.1)  # the grid's 0.0 as hptune allows it
    assert regularization.schedulers == ["constant_with_warmup", "linear"]
    assert regularization.sampler_seed == 7
    assert config.budget.seed_epochs == 120 and config.objective.max_seeds == 4
    assert config.storage.startswith("journal:///")


def test_a_constant_rate_run_is_a_prefix_of_a_longer_one(tiny_config_dict, demo_path) -> None:
    """What the table builder relies on to read a constant-rate cell off a longer run: the
    data order and dropout of epoch k depend on the seed and k only."""
    from hptune.config import config_from_dict
    from hptune.hparams import HParams
    from hptune.train import Runner

    validation = Path(tiny_config_dict["output_dir"]).parent / "validation.jsonl"
    demo = demo_path / "data" / "validation.jsonl"
    validation.write_text("".join(demo.read_text().splitlines(keepends=True)[:16]))
    tiny_config_dict["data"]["validation"] = str(validation)
    tiny_config_dict["method"]["dropout"] = 0.1  # dropout's stream matters too
    tiny_config_dict["training"].update(checkpoints=False, max_train_examples=32)
    runner = Runner(config_from_dict(tiny_config_dict))

    def curve(epochs: int, scheduler: str = "constant_with_warmup") -> list[float]:
        hp = HParams(learning_rate=5e-3, batch_size=8, gradient_accumulation_steps=1,
                     epochs=epochs, warmup_ratio=0.0, weight_decay=0.01,
                     scheduler=scheduler)  # fmt: skip
        return [e.eval_loss for e in runner.train(hp, seed=1).epochs]

    short, long = curve(1), curve(2)
    assert short == long[:1]
    assert curve(1, "linear") != curve(2, "linear")[:1]  # a decaying rate is not a prefix
