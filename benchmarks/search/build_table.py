"""Build (or extend) a tuning table from any hptune configuration: every configuration of a
grid trained on every seed, with its per-epoch validation curve (see ``table.py`` for the
file). Searches are later raced by replaying the table (as tabular HPO benchmarks such as
LCBench are used), so each search costs no training.

    .venv/bin/python benchmarks/search/build_table.py --config TASK.yaml --grid GRID.yaml
        --seeds N --out TABLE.json [--workers W]
    .venv/bin/python benchmarks/search/build_table.py --suite [--workers W]
    .venv/bin/python benchmarks/search/build_table.py --config examples/alpaca.yaml --quick

Each finished run is written into the table as it ends (atomically: a temporary file
replaced), so a build stopped part-way goes on where it stopped; more seeds extend a table.
A configuration whose learning rate does not depend on the run's length (constant, no
warmup) is trained once at its longest epoch count and read at the shorter ones: the data
order and dropout of epoch k depend only on the seed and k, so the shorter run is a prefix.

``--suite`` builds the tables of ``benchmarks/search/tasks/`` (each ``NAME.yaml`` with its
``NAME.grid.yaml``) into ``benchmarks/search/tables/NAME.json``. ``--quick`` trains a small
grid derived from the configuration (its learning rate x 0.5 and x 2, 1 and 2 epochs of a
constant rate, 64 training examples, 4 seeds) to check the machinery on any configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table import LENGTH_FREE, ROOT, TABLES_DIR, Table, configurations, key, name

HERE = Path(__file__).resolve().parent
TASKS = HERE / "tasks"
QUICK_SEEDS = 4  # the race lets a searcher see half: hptune needs two


def task_config(path: Path, quick: bool = False) -> tuple[dict[str, Any], Path]:
    """The configuration as the table records it: checkpoints off, and for ``quick`` a small
    training set. Returns the raw configuration and the directory of its relative paths."""
    raw = yaml.safe_load(path.read_text())
    raw.setdefault("training", {})["checkpoints"] = False
    if quick:
        raw["training"]["max_train_examples"] = 32
        raw.setdefault("objective", {})["eval_samples"] = 4
    return raw, path.resolve().parent


def quick_grid(raw: dict[str, Any]) -> dict[str, list[Any]]:
    """The configuration's rate x 0.5 and x 2 at 1 and 2 epochs of a constant rate (one run
    per rate and seed, read at both lengths)."""
    rate = float(raw.get("training", {}).get("learning_rate", 1e-4))
    return {"learning_rate": [rate * 0.5, rate * 2], "epochs": [1, 2],
            "scheduler": ["constant_with_warmup"], "warmup_ratio": [0.0]}  # fmt: skip


def _load(raw: dict[str, Any], directory: Path) -> Any:
    from hptune.config import config_from_dict

    raw = {**raw, "output_dir": tempfile.mkdtemp(prefix="hptune-table-")}
    return config_from_dict(raw, base_dir=directory)


def jobs(cells: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """What to train: (the run, the cells it gives). A length-free schedule's cells that
    differ only in epochs come from one run at the longest; every other cell is its own."""
    groups: dict[str, list[dict[str, Any]]] = {}
    out = []
    for cell in cells:
        if (cell.get("scheduler"), cell.get("warmup_ratio")) == LENGTH_FREE and "epochs" in cell:
            rest = {k: v for k, v in cell.items() if k != "epochs"}
            groups.setdefault(json.dumps(rest, sort_keys=True), []).append(cell)
        else:
            out.append((cell, [cell]))
    for group in groups.values():
        longest = max(group, key=lambda c: c["epochs"])
        out.append((longest, group))
    return out


def hparams(fixed: dict[str, Any], cell: dict[str, Any], effective: int) -> Any:
    from hptune.hparams import HParams

    values = {**fixed, **cell}
    if "batch_size" in cell and "gradient_accumulation_steps" not in cell:
        values["gradient_accumulation_steps"] = max(1, effective // cell["batch_size"])
    return HParams.from_dict(values)


def build(
    out: Path,
    raw: dict[str, Any],
    directory: Path,
    grid: dict[str, list[Any]] | list[dict[str, list[Any]]],
    seeds: list[int],
    workers: int = 1,
) -> dict[str, Any]:
    """Train what the table at ``out`` lacks and write it there run by run.

    Returns:
        The table's JSON document.
    """
    from hptune.pipeline import resolve_hparams
    from hptune.train import Runner

    relative = directory.relative_to(ROOT) if directory.is_relative_to(ROOT) else directory
    if out.exists():
        table = json.loads(out.read_text())
        if table["config"] != raw:
            raise SystemExit(f"{out} was built from another configuration; give another --out")
        # Another grid extends the table: runs outside the new design stay stored but are no
        # cell of it (Table reads only the grid's cells).
        table["grid"] = grid
    else:
        runner = Runner(_load(raw, directory))
        start, _ = resolve_hparams(runner.config, runner.data.n_train)
        fixed = {k: v for k, v in start.to_dict().items() if k != "max_grad_norm"}
        table = {"format": 2, "config": raw, "config_dir": str(relative), "grid": grid,
                 "fixed": fixed, "start": fixed, "n_train": runner.data.n_train,
                 "runs": {}, "cost": {"train_seconds": 0.0, "runs_trained": 0,
                                      "wall_seconds": 0.0}}  # fmt: skip
        del runner
    effective = table["fixed"]["batch_size"] * table["fixed"]["gradient_accumulation_steps"]
    derived = _derive_prefixes(table, configurations(grid), seeds)
    if derived:
        print(f"{out.name}: {derived} runs read off longer stored runs", flush=True)
        _save(out, table)
    todo = [(run, cells, seed) for run, cells in jobs(configurations(grid)) for seed in seeds
            if any(key(c, seed) not in table["runs"] for c in cells)]  # fmt: skip
    # The longest runs first, so two workers end together.
    todo.sort(key=lambda t: -t[0].get("epochs", table["fixed"]["epochs"]))
    print(f"{out.name}: {len(table['runs'])} runs stored, {len(todo)} to train", flush=True)
    if not todo:
        return table
    started = time.perf_counter()
    wall = table["cost"]["wall_seconds"]
    tasks = [(hparams(table["fixed"], run, effective), run, cells, seed)
             for run, cells, seed in todo]  # fmt: skip
    init = (raw, str(directory), 1 if workers > 1 else None)
    if workers > 1:  # a tiny model trains faster as N one-thread processes than one N-thread
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _start_worker, init) as pool:
            _collect(out, table, pool.imap_unordered(_train, tasks), len(tasks), started, wall)
    else:
        _start_worker(*init)
        _collect(out, table, map(_train, tasks), len(tasks), started, wall)
    return table


_RUNNER: Any = None


def _start_worker(raw: dict[str, Any], directory: str, threads: int | None) -> None:
    global _RUNNER
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    import logging

    logging.getLogger("hptune").setLevel(logging.ERROR)
    _RUNNER = __import__("hptune.train", fromlist=["Runner"]).Runner(_load(raw, Path(directory)))


def _train(task: tuple[Any, dict[str, Any], list[dict[str, Any]], int]) -> tuple:
    hp, run, cells, seed = task
    start = time.perf_counter()
    result = _RUNNER.train(hp, seed)
    return run, cells, seed, result.to_dict(), time.perf_counter() - start


def _prefix(stored: dict[str, Any], run: dict[str, Any], cell: dict[str, Any],
            seed: int) -> dict[str, Any]:  # fmt: skip
    """The first ``cell["epochs"]`` epochs of a stored longer run, as the cell's run."""
    n = cell["epochs"]
    entry = dict(stored)
    entry["epochs"] = stored["epochs"][:n]
    entry["seconds"] = round(stored["seconds"] * n / run["epochs"], 3)
    entry["prefix_of"] = key(run, seed)
    # The epoch a run diverged in at validation is stored: the prefix is clean only when
    # the run went on past epoch n.
    if stored["diverged"] and len(stored["epochs"]) > n:
        entry["diverged"], entry["diverged_at"] = False, None
    return entry


def _derive_prefixes(table: dict, cells: list[dict[str, Any]], seeds: list[int]) -> int:
    """Fill the length-free cells a stored longer run already holds (a grid given more epoch
    counts later); returns how many."""
    filled = 0
    for cell in cells:
        if (cell.get("scheduler"), cell.get("warmup_ratio")) != LENGTH_FREE or "epochs" not in cell:
            continue
        for seed in seeds:
            if key(cell, seed) in table["runs"]:
                continue
            for longer in range(cell["epochs"] + 1, 100):
                run = {**cell, "epochs": longer}
                stored = table["runs"].get(key(run, seed))
                if stored is not None and "prefix_of" not in stored:
                    table["runs"][key(cell, seed)] = _prefix(stored, run, cell, seed)
                    filled += 1
                    break
    return filled


def _save(out: Path, table: dict) -> None:
    temporary = out.with_suffix(".tmp")
    temporary.write_text(json.dumps(table))
    os.replace(temporary, out)  # a killed build loses at most the runs in progress


def _collect(out: Path, table: dict, results: Any, total: int, started: float,
             wall: float) -> None:  # fmt: skip
    for index, (run, cells, seed, stored, seconds) in enumerate(results, 1):
        for cell in cells:
            entry = stored if cell is run else _prefix(stored, run, cell, seed)
            table["runs"][key(cell, seed)] = entry
        table["cost"]["train_seconds"] = round(table["cost"]["train_seconds"] + seconds, 1)
        table["cost"]["runs_trained"] += 1
        table["cost"]["wall_seconds"] = round(wall + time.perf_counter() - started, 1)
        _save(out, table)
        field = "eval_loss" if table["config"]["objective"].get("metric", "eval_loss") == \
            "eval_loss" else "score"  # fmt: skip
        curve = [None if e[field] is None else round(e[field], 4) for e in stored["epochs"]]
        print(f"{index}/{total} {key(run, seed)} {field} {curve} ({seconds:.1f} s)", flush=True)


def difficulty(table: Table) -> dict[str, Any]:
    """The table's difficulty line: best truth, sigma, the share of configurations within
    noise of the best, and how often the starting configuration and the statistics-free
    coordinate search end within noise (over splits of the seeds, as the race scores)."""
    from searchers import coordinate_search, seed_splits

    within = table.within_noise()
    splits = seed_splits(table, 50)
    start = table.start()
    coordinate = [
        table.held_out(unseen).regret(coordinate_search(table, seen[:3], limit=None).choice)
        for seen, unseen in splits
    ]
    start_scores = [table.held_out(unseen).regret(start) for _, unseen in splits]
    share = sum(r <= 1.0 for r in coordinate) / len(coordinate)
    return {
        "configurations": len(table.cells),
        "missing_cells": table.missing,
        "seeds": len(table.seeds),
        "best_truth": table.sign * table.best,
        "best": table.best_cell,
        "sigma": table.sigma,
        "within_noise_share": len(within) / len(table.cells),
        "within_noise": len(within),
        "start": start,
        "start_within_noise_share": sum(r <= 1.0 for r in start_scores) / len(start_scores),
        "coordinate_within_noise_share": share,
        "too_easy": share >= 0.9,
        "splits": len(splits),
    }


def record_summary(out: Path, table: Table, figures: dict[str, Any]) -> None:
    """Store each configuration's seed standard deviation and the difficulty line in the
    table's file (read back by nothing: the race recomputes them from the runs)."""
    import statistics

    raw = json.loads(out.read_text())
    raw["summary"] = {
        "seed_std": {
            name(c): statistics.stdev(table.value(c, s) for s in table.seeds)
            if all(math.isfinite(table.value(c, s)) for s in table.seeds) else None
            for c in table.cells
        },
        "difficulty": figures,
        "difficulty_line": difficulty_line(table, figures),
    }  # fmt: skip
    _save(out, raw)


def difficulty_line(table: Table, figures: dict[str, Any]) -> str:
    cost = table.raw.get("cost", {})
    verdict = ("TOO EASY to claim anything: the statistics-free coordinate search reaches 90%"
               if figures["too_easy"] else "hard enough")  # fmt: skip
    missing = figures["missing_cells"]
    return (
        f"{figures['configurations']} configurations x {figures['seeds']} seeds"
        f"{f' ({missing} cells missing)' if missing else ''}, {table.metric} "
        f"({table.direction}); best truth {figures['best_truth']:.4g} at "
        f"{json.dumps(figures['best'], sort_keys=True)}; sigma {figures['sigma']:.4g}; within "
        f"noise of the best: {figures['within_noise']} of {figures['configurations']} "
        f"({100 * figures['within_noise_share']:.1f}%); starting configuration within noise "
        f"in {100 * figures['start_within_noise_share']:.0f}% of {figures['splits']} seed "
        f"splits; statistics-free coordinate search (3 seeds): "
        f"{100 * figures['coordinate_within_noise_share']:.0f}% ({verdict}); cost "
        f"{cost.get('train_seconds', 0):.0f} s of training over {cost.get('runs_trained', 0)} "
        f"runs, {cost.get('wall_seconds', 0):.0f} s wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="an hptune configuration (YAML)")
    parser.add_argument("--grid", type=Path, help="the grid (YAML: a mapping or a list of them)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--out", type=Path, help="the table (JSON)")
    parser.add_argument("--suite", action="store_true", help="build every table of tasks/")
    parser.add_argument("--only", nargs="*", help="with --suite: these tasks only")
    parser.add_argument("--quick", action="store_true",
                        help="a small grid from the configuration, 4 seeds")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1,
                        help="training processes, one thread each (e.g. 2)")  # fmt: skip
    args = parser.parse_args()
    if args.suite:
        plans = [(path, path.with_suffix(".grid.yaml"), TABLES_DIR / f"{path.stem}.json")
                 for path in sorted(TASKS.glob("*.yaml")) if not path.name.endswith(".grid.yaml")
                 and (not args.only or path.stem in args.only)]  # fmt: skip
    elif args.config is None:
        raise SystemExit("give --config TASK.yaml (with --grid, or --quick), or --suite")
    else:
        if not args.config.is_file():
            raise SystemExit(f"--config {args.config}: no such file")
        out = args.out or Path(tempfile.mkdtemp(prefix="hptune-table-")) / "table.json"
        plans = [(args.config, args.grid, out)]
    for config_path, grid_path, out in plans:
        raw, directory = task_config(config_path, quick=args.quick)
        if args.quick:
            grid: Any = quick_grid(raw)
        elif grid_path is None or not grid_path.is_file():
            raise SystemExit(f"no grid for {config_path}: give --grid GRID.yaml (or --quick)")
        else:
            grid = yaml.safe_load(grid_path.read_text())
        seeds = list(range(QUICK_SEEDS if args.quick else args.seeds))
        out.parent.mkdir(parents=True, exist_ok=True)
        build(out, raw, directory, grid, seeds, args.workers)
        table = Table.load(out)
        figures = difficulty(table)
        record_summary(out, table, figures)
        print(f"{out}: {len(table.runs)} runs; {difficulty_line(table, figures)}")


if __name__ == "__main__":
    main()
