"""Build (or extend) the tabular benchmark of the demo task: every configuration of a grid
over learning rate x batch x epochs x weight decay x scheduler x warmup, trained on every
seed, with its per-epoch validation curve. Searches are later raced by replaying this table
(as tabular HPO benchmarks such as LCBench are used), so each search costs no training.

    .venv/bin/python benchmarks/search/build_table.py [--out FILE] [--workers N] [--quick]

The table is a JSON file; each finished run is appended as it ends (atomically), so an
interrupted build goes on where it stopped. The grid (72 configurations x 8 seeds) is 576
runs: 11,083 s of training summed over runs (measured while other jobs shared the 2 cores;
about 14 s a run alone), about 70 minutes wall with ``--workers 2`` on 2 free cores;
``--quick`` builds a 12-run table to check the machinery.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.yaml"
EFFECTIVE_BATCH = 32

GRID: dict[str, list[Any]] = {
    "learning_rate": [5e-3, 1e-2, 5e-2],
    "batch_size": [4, 16],
    "epochs": [2, 3, 4],
    "weight_decay": [0.01, 0.1],
    "scheduler": ["linear"],
    "warmup_ratio": [0.05, 0.1],
}
QUICK_SEEDS = 3  # the race lets a searcher see all but one
QUICK_GRID: dict[str, list[Any]] = {
    "learning_rate": [5e-3, 5e-2],
    "batch_size": [16],
    "epochs": [1, 2],
    "weight_decay": [0.01],
    "scheduler": ["linear"],
    "warmup_ratio": [0.05],
}


def key(config: dict[str, Any], seed: int) -> str:
    """The table's key of one run: the configuration and the seed, canonical JSON."""
    return json.dumps({**config, "seed": seed}, sort_keys=True)


def configurations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]


def _runner(quick: bool) -> Any:
    from hptune.config import load_config
    from hptune.train import Runner

    raw = yaml.safe_load(DEMO.read_text())
    raw["training"]["checkpoints"] = False
    if quick:
        raw["training"]["max_train_examples"] = 64
        raw["objective"]["eval_samples"] = 4
    raw["output_dir"] = tempfile.mkdtemp(prefix="hptune-table-")
    path = Path(raw["output_dir"]) / "table.yaml"
    path.write_text(yaml.safe_dump(raw))
    return Runner(load_config(path))


def build(
    out: Path, grid: dict[str, list[Any]], seeds: list[int], quick: bool, workers: int = 1
) -> dict:
    table = json.loads(out.read_text()) if out.exists() else {"grid": grid, "runs": {}}
    if table["grid"] != grid:
        raise SystemExit(f"{out} holds another grid; give another --out")
    todo = [(c, s) for c in configurations(grid) for s in seeds
            if key(c, s) not in table["runs"]]  # fmt: skip
    print(f"{len(table['runs'])} runs cached, {len(todo)} to train", flush=True)
    if workers > 1:  # a tiny model trains faster as N one-thread processes than one N-thread
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _start_worker, (quick, 1)) as pool:
            _collect(out, table, pool.imap_unordered(_train, todo), len(todo))
    else:
        _start_worker(quick, None)
        _collect(out, table, map(_train, todo), len(todo))
    return table


_RUNNER: Any = None


def _start_worker(quick: bool, threads: int | None) -> None:
    global _RUNNER
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _RUNNER = _runner(quick)


def _train(task: tuple[dict[str, Any], int]) -> tuple[str, dict[str, Any], float]:
    from hptune.hparams import HParams

    config, seed = task
    hp = HParams(
        learning_rate=config["learning_rate"],
        batch_size=config["batch_size"],
        gradient_accumulation_steps=EFFECTIVE_BATCH // config["batch_size"],
        epochs=config["epochs"],
        warmup_ratio=config["warmup_ratio"],
        weight_decay=config["weight_decay"],
        scheduler=config["scheduler"],
    )
    start = time.perf_counter()
    result = _RUNNER.train(hp, seed)
    # The whole run as hptune stores it (curves, divergence, throughput), so a replay can
    # hand it back to hptune's pipeline exactly as a trained run.
    return key(config, seed), result.to_dict(), time.perf_counter() - start


def _collect(out: Path, table: dict, results: Any, total: int) -> None:
    for index, (name, run, seconds) in enumerate(results, 1):
        table["runs"][name] = run
        temporary = out.with_suffix(".tmp")
        temporary.write_text(json.dumps(table))
        temporary.replace(out)  # a killed build loses at most the runs in progress
        curve = [round(e["eval_loss"], 4) for e in run["epochs"]]
        print(f"{index}/{total} {name} eval_loss {curve} ({seconds:.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("demo_table.json"))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="a 12-run grid, 3 seeds")
    parser.add_argument(
        "--workers", type=int, default=1, help="training processes, one thread each (e.g. 2)"
    )
    args = parser.parse_args()
    grid = QUICK_GRID if args.quick else GRID
    seeds = list(range(QUICK_SEEDS if args.quick else args.seeds))
    if args.quick and args.out.name == "demo_table.json":
        args.out = Path(tempfile.mkdtemp(prefix="hptune-table-")) / "quick_table.json"
    table = build(args.out, grid, seeds, args.quick, args.workers)
    print(f"{args.out}: {len(table['runs'])} runs")


if __name__ == "__main__":
    main()
