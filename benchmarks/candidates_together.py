"""Candidates together: the demo's learning-rate phase, whole (every rate of its grid x its
seeds, validation after every epoch), trained three ways through hptune's own runs:

* in turn: ``Runner.train`` per rate and seed;
* seeds together: each rate's seeds as one stack (``train_together``, what
  ``training.seeds_together: auto`` does today);
* candidates and seeds together: groups of G adapters (rates x seeds) as one stack
  (``hptune.train.together.train_group``), at G = 3, 6 and 12.

It prints the wall time of each way, ``vs in turn: N.NNx`` and ``vs seeds together: N.NNx``,
and the largest relative difference of a seed's validation loss (per epoch) from in turn.
``--no-dropout`` sets the LoRA dropout to 0, where each adapter should train as its own run.

    .venv/bin/python benchmarks/candidates_together.py               # the demo as it is
    .venv/bin/python benchmarks/candidates_together.py --no-dropout --grid 1e-3 5e-3 1e-2 --epochs 2
    .venv/bin/python benchmarks/candidates_together.py --quick       # a smoke test
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _runner(args: argparse.Namespace) -> Any:
    from hptune.config import config_from_dict
    from hptune.train import Runner

    raw = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    if args.no_dropout:
        raw["method"]["dropout"] = 0.0
    if args.quick:
        raw["training"].update(max_train_examples=64, max_validation_examples=32)
    raw["training"].update(checkpoints=False, seeds_together=True)
    raw["output_dir"] = tempfile.mkdtemp(prefix="hptune-bench-candidates-")
    return Runner(config_from_dict(raw, base_dir=ROOT / "examples"))


def _start(runner: Any, epochs: int | None) -> Any:
    """The learning-rate phase's incoming configuration: hptune's starting point."""
    from hptune.plan import starting_point

    hp = starting_point(runner.config, runner).hparams
    return hp.replace(epochs=epochs) if epochs else hp


def in_turn(runner: Any, hps: list[Any], seeds: list[int]) -> dict[tuple[int, int], list[float]]:
    return {
        (i, seed): [e.eval_loss for e in runner.train(hp, seed).epochs]
        for i, hp in enumerate(hps)
        for seed in seeds
    }


def grouped(
    runner: Any, hps: list[Any], seeds: list[int], size: int
) -> dict[tuple[int, int], list[float]]:
    """Every rate x seed in stacks of ``size`` adapters (whole rates at a time where they
    fit; a rate's seeds split over stacks when ``size`` is smaller than the seeds)."""
    from hptune.train.together import Member, train_group

    owners = [(i, seed) for i in range(len(hps)) for seed in seeds]
    values: dict[tuple[int, int], list[float]] = {}
    for first in range(0, len(owners), size):
        chunk = owners[first : first + size]
        rates = sorted({i for i, _ in chunk})
        members = [Member(hps[i], [s for j, s in chunk if j == i], []) for i in rates]
        for member in members:
            member.on_epoch = [None] * len(member.seeds)
        for i, runs in zip(rates, train_group(runner, members), strict=True):
            for run in runs:
                values[(i, run.seed)] = [e.eval_loss for e in run.epochs]
    return values


def _gap(
    base: dict[tuple[int, int], list[float]], other: dict[tuple[int, int], list[float]]
) -> float:
    return max(
        abs(a - b) / abs(a)
        for key, curve in base.items()
        for a, b in zip(curve, other[key], strict=False)
    )


def main() -> None:
    import warnings

    from transformers.utils import logging

    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 examples, 1 epoch, G = 2, 4")
    parser.add_argument("--no-dropout", action="store_true", help="LoRA dropout 0")
    parser.add_argument("--grid", type=float, nargs="+", help="default: the demo's grid")
    parser.add_argument("--epochs", type=int, help="default: the phase's incoming epochs")
    parser.add_argument("--sizes", type=int, nargs="+", help="the G to time (default 3 6 12)")
    args = parser.parse_args()
    runner = _runner(args)
    config = runner.config
    grid = args.grid or config.phases.learning_rate.grid
    seeds = config.objective.seed_list[: 2 if args.quick else None]
    hp = _start(runner, 1 if args.quick else args.epochs)
    hps = [hp.replace(learning_rate=rate) for rate in grid]
    sizes = args.sizes or ([2, 4] if args.quick else [3, 6, 12])
    print(
        f"demo learning-rate phase: rates {', '.join(f'{r:g}' for r in grid)} x seeds {seeds}, "
        f"{hp.epochs} epoch(s) of {runner.data.n_train} examples, batch {hp.batch_size} x "
        f"{hp.gradient_accumulation_steps}, LoRA dropout {config.method.dropout:g}; validation "
        f"on {len(runner.data.validation)} examples after every epoch"
    )
    runner.train(hp.replace(epochs=1), seeds[0])  # untimed: the base loaded, first loss measured
    timings: dict[str, float] = {}
    results: dict[str, dict[tuple[int, int], list[float]]] = {}
    ways = [
        ("in turn", lambda: in_turn(runner, hps, seeds)),
        ("seeds together", lambda: grouped(runner, hps, seeds, len(seeds))),
    ]
    ways += [(f"{g} adapters", lambda g=g: grouped(runner, hps, seeds, g)) for g in sizes]
    for name, way in ways:
        start = time.perf_counter()
        results[name] = way()
        timings[name] = time.perf_counter() - start
        print(
            f"{name:>16}: {timings[name]:8.1f} s, vs in turn: "
            f"{timings['in turn'] / timings[name]:.2f}x, vs seeds together: "
            f"{timings.get('seeds together', timings[name]) / timings[name]:.2f}x, "
            f"largest relative difference from in turn "
            f"{_gap(results['in turn'], results[name]):.2e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
