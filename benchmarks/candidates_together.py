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
    .venv/bin/python benchmarks/candidates_together.py --whole-run [--out DIR]

``--whole-run`` runs the demo whole (``examples/demo.yaml``, every phase and the final
evaluation) twice through ``hptune run``: seeds together only (``candidates_together:
false``), then candidates and seeds together (``auto``, the demo's own setting). It prints
each wall time, their ratio, what each run decided, where the decisions differ, and the
final configuration's test values. With ``--out`` a run already finished there (its
``wall.json``) is read back, not run again.
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


def _final(storage: Path) -> str:
    """The final evaluation's validation and test values per seed, read with Optuna."""
    import statistics

    import optuna

    from hptune.record import outcome_from_trial

    study = optuna.load_study(study_name="demo.final", storage=f"sqlite:///{storage}")
    outcome = outcome_from_trial(study.trials[-1])
    parts = []
    for split, values in (("validation", outcome.seed_values), ("test", outcome.test_values)):
        rounded = {seed: round(value, 4) for seed, value in sorted(values.items())}
        parts.append(f"{split} {rounded} (mean {statistics.fmean(values.values()):.4f})")
    return ", ".join(parts)


def whole_run(out: Path) -> None:
    """The demo's whole run with candidates apart, then together (see the module's doc)."""
    import json
    import subprocess
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from compare_runs import differences, read

    raw = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    stores, seconds = {}, {}
    for setting in (False, "auto"):
        folder = out / str(setting)
        wall = folder / "wall.json"
        if not wall.exists():
            training = {**raw["training"], "seeds_together": "auto"}
            config = dict(raw, output_dir=str(folder), training=training)
            config["training"]["candidates_together"] = setting
            folder.mkdir(parents=True, exist_ok=True)
            path = out / f"demo-{setting}.yaml"
            path.write_text(yaml.safe_dump(config))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "hptune", "run", "-q", str(path)],
                           cwd=ROOT / "examples", check=True)  # fmt: skip
            wall.write_text(json.dumps({"seconds": time.perf_counter() - start}))
        seconds[setting] = json.loads(wall.read_text())["seconds"]
        stores[setting] = read(folder / "hptune.db")
        print(f"candidates_together {setting}: {seconds[setting] / 60:.1f} min", flush=True)
    print(f"ratio {seconds[False] / seconds['auto']:.2f}x")
    for setting, store in stores.items():
        decisions = {name: study["decision"] for name, study in store.items()}
        print(f"decisions ({setting}): {json.dumps(decisions)}")
        print(f"final ({setting}): {_final(out / str(setting) / 'hptune.db')}")
    found = [d for d in differences(stores[False], stores["auto"], 0.0) if "decision" in d]
    print("same decisions" if not found else "decisions differ:\n" + "\n".join(found))


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
    parser.add_argument("--whole-run", action="store_true", help="the demo's run both ways")
    parser.add_argument("--out", type=Path, help="with --whole-run: where the runs are kept")
    args = parser.parse_args()
    if args.whole_run:
        whole_run(args.out or Path(tempfile.mkdtemp(prefix="hptune-bench-whole-")))
        return
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
