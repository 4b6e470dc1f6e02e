"""The search suite's machinery on synthetic tables whose truth is known (no training): the
design's cells, prefix runs, snapping onto a fractional design, the seed splits, the
statistics-free coordinate search, the race's paired test and the calibration's rates (racing
replayed as hptune races)."""

import json
import math
import random
import statistics
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


RACE_BEST = [2.00, 2.10, 2.05, 2.02, 2.08]  # racing's replay: the best rate, by seed
RACE_GAPS = {  # the others' gaps from it, by seed
    1e-4: [0.0] * 5,
    5e-5: [0.05, 0.02, 0.07, 0.06, 0.05],
    3e-5: [0.05, -0.04, 0.07, -0.05, 0.06],  # never told apart
    2e-5: [0.08, 0.06, 0.10, 0.08, 0.09],  # told apart after one racing seed
    1e-5: [0.5, 0.56, 0.47, 0.53, 0.48],  # worse from the start
}


def test_the_replay_gives_each_candidate_the_seeds_the_pipeline_gives(tmp_path) -> None:
    """The same values through hptune's phase (work_through_queue, racing to 5 seeds) and
    through the replay: every configuration ends with the same seeds and verdict."""
    optuna = pytest.importorskip("optuna")
    import calibration
    import calibration_racing

    from hptune import keys
    from hptune.config import config_from_dict
    from hptune.hparams import HParams
    from hptune.phases import LearningRatePhase, rank_within_noise
    from hptune.pipeline import work_through_queue
    from hptune.storage import open_storage

    config = config_from_dict({"name": "race", "model": {"path": "demo://model"},
                               "data": {"train": "t.jsonl", "validation": "v.jsonl"},
                               "objective": {"seeds": 3, "max_seeds": 5},
                               "output_dir": str(tmp_path)})  # fmt: skip
    base = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=1, epochs=1,
                   warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip
    phase = LearningRatePhase(sorted(RACE_GAPS), extend_edges=0)
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name="race.learning_rate",
                                sampler=phase.create_sampler())  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        rate = phase.suggest(trial, base).learning_rate
        seeds = trial.user_attrs.get(keys.RACE_SEEDS) or [0, 1, 2]
        values = {str(s): RACE_BEST[s] + RACE_GAPS[rate][s] for s in seeds}
        trial.set_user_attr(keys.SEED_VALUES, values)
        keys.set_status(trial, keys.TrialStatus.OK)
        return statistics.fmean(values.values())

    result = work_through_queue(config, storage, study, phase, base, objective)
    piped = {o.params["learning_rate"]: len(o.seed_values) for o in result.outcomes}
    ranking = rank_within_noise(result.outcomes, "minimize")
    said = {o.params["learning_rate"]: c.verdict.value
            for o in result.outcomes if (c := ranking.comparisons.get(o.number))}  # fmt: skip

    rates = sorted(RACE_GAPS)
    values = [{s: RACE_BEST[s] + RACE_GAPS[r][s] for s in range(5)} for r in rates]
    best, verdicts, used = calibration_racing.race(values, 3, 5, calibration._rank)
    assert dict(zip(rates, used, strict=True)) == piped == {1e-5: 3, 2e-5: 4, 3e-5: 5, 5e-5: 5,
                                                            1e-4: 5}  # fmt: skip
    assert rates[best] == 1e-4
    assert {rates[k]: v for k, v in verdicts.items()} == said


def test_a_contender_undecided_again_takes_the_seed_it_skipped() -> None:
    """As queue_racing's _next_seed: the first extra seed it lacks; the best already has it
    and trains none; a candidate decided stays at its seeds; nothing passes the cap."""
    import calibration_racing

    script = [
        {1: "undecided", 2: "worse", 3: "undecided"},  # 3 seeds: 1 and 3 race on seed 3
        {1: "worse", 2: "worse", 3: "undecided"},  # 4: 3 races on seed 4
        {1: "undecided", 2: "worse", 3: "undecided"},  # 5: 1 is back, on its seed 4
        {1: "undecided", 2: "worse", 3: "undecided"},  # 3 capped; 1 races on seed 5 alone
        {1: "undecided", 2: "worse", 3: "undecided"},  # all capped: racing ends
    ]
    seen: list[list[list[int]]] = []

    def rank(values: list[dict[int, float]]) -> tuple[int, dict[int, str], float | None]:
        seen.append([sorted(v) for v in values])
        return 0, script[len(seen) - 1], None

    values = [{s: float(s) for s in range(6)} for _ in range(4)]
    best, verdicts, used = calibration_racing.race(values, 3, 6, rank)
    assert seen[1] == [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2], [0, 1, 2, 3]]
    assert seen[2] == [[0, 1, 2, 3, 4], [0, 1, 2, 3], [0, 1, 2], [0, 1, 2, 3, 4]]
    assert seen[3] == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4], [0, 1, 2], [0, 1, 2, 3, 4, 5]]
    assert seen[4] == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], [0, 1, 2], [0, 1, 2, 3, 4, 5]]
    assert len(seen) == 5 and used == [6, 6, 3, 6]
    assert (best, verdicts) == (0, script[4])


def test_calibration_reports_the_rates_after_racing_and_the_seeds_it_used() -> None:
    import calibration

    table = synthetic()
    table.path = "synthetic.json"
    far = calibration.separated_pair(table, 60, 40.0, 3, random.Random(0), race_to=5)
    assert far["worse"]["rate"] > 0.9 and far["seeds"]["seeds_per_candidate"] < 3.2  # no race
    equal = calibration.equal_candidates(table, 60, 4, 3, True, random.Random(0), race_to=5)
    assert equal["worse_per_comparison"]["n"] == 180
    assert 3.5 < equal["seeds"]["seeds_per_candidate"] <= 5  # equal: most race to the cap
    assert equal["seeds"]["raced_share"] > 0.5
    figures = calibration.calibrate(table, 6, max_seeds=5)
    assert figures["racing"]["max_seeds"] == 5 and "pair_gap_1_sigma" in figures["racing"]
    text = calibration.report(figures)
    assert "| 3 seeds | 5 seeds | racing (3 -> up to 5 seeds) |" in text
    assert "racing (3 -> up to 5 seeds), equal_recentred_k4: " in text
    assert "racing" not in calibration.calibrate(table, 6, max_seeds=3)


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
