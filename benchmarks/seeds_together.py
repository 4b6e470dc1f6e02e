"""Seeds together (``training.seeds_together``) against seeds one after the other, through
hptune's own runs: ``Runner.train`` per seed, and ``hptune.train.together.train_together``
for the K seeds at once (one forward and backward over their K sub-batches).

Each way trains the same K seeds (their adapters, data orders and hyperparameters) for one
epoch, each epoch measured on the validation split as a trial's seed is. Without dropout the
two ways should give each seed the same validation loss. The figures: seed-epochs per second
(whole runs, validation included; and training steps alone), their ratio, and the largest
relative difference of a seed's validation loss.

    .venv/bin/python benchmarks/seeds_together.py [--quick] [--larger]
    .venv/bin/python benchmarks/seeds_together.py --whole-run   # the demo both ways
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RATE, BATCH, CLIP = 3e-3, 4, 1.0


def _runner(examples: int, model_path: str | None = None) -> Any:
    from hptune.config import config_from_dict
    from hptune.train import Runner

    raw = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    raw["method"]["dropout"] = 0.0  # each seed's values comparable between the two ways
    if model_path is not None:
        raw["model"]["path"] = model_path
    raw["training"].update(max_train_examples=examples, max_validation_examples=64,
                           checkpoints=False, seeds_together=True)  # fmt: skip
    raw["output_dir"] = tempfile.mkdtemp(prefix="hptune-bench-together-")
    raw["guardrails"] = {"ignore": ["high_learning_rate"]}
    return Runner(config_from_dict(raw, base_dir=ROOT / "examples"))


def _hparams() -> Any:
    from hptune.hparams import HParams

    return HParams(learning_rate=RATE, batch_size=BATCH, gradient_accumulation_steps=1,
                   epochs=1, warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=CLIP)  # fmt: skip


def sequential(runner: Any, seeds: list[int]) -> tuple[float, float, list[float]]:
    """Whole seconds, training seconds, and each seed's validation loss, one after the other."""
    start = time.perf_counter()
    runs = [runner.train(_hparams(), seed) for seed in seeds]
    whole = time.perf_counter() - start
    return whole, sum(r.seconds for r in runs), [r.epochs[-1].eval_loss for r in runs]


def together(runner: Any, seeds: list[int]) -> tuple[float, float, list[float]]:
    """The same, the seeds together."""
    from hptune.train.together import train_together

    start = time.perf_counter()
    runs = train_together(runner, _hparams(), seeds, [None] * len(seeds))
    whole = time.perf_counter() - start
    return whole, sum(r.seconds for r in runs), [r.epochs[-1].eval_loss for r in runs]


def whole_run(dropout: float | None = None) -> None:
    """The demo's whole run, seeds one after the other, then together (``auto``): the wall
    time of each and what the two decided, compared as ``scripts/compare_runs.py`` does
    (``dropout``: the LoRA dropout instead of the demo's)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from compare_runs import differences, read

    out = Path(tempfile.mkdtemp(prefix="hptune-bench-whole-"))
    raw = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    if dropout is not None:
        raw["method"]["dropout"] = dropout
    stores, seconds = {}, {}
    for setting in (False, "auto"):
        config = dict(raw, output_dir=str(out / str(setting)))
        config["training"] = {**raw["training"], "seeds_together": setting}
        path = out / f"demo-{setting}.yaml"
        path.write_text(yaml.safe_dump(config))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hptune", "run", "-q", str(path)],
                       cwd=ROOT / "examples", check=True)  # fmt: skip
        seconds[setting] = time.perf_counter() - start
        stores[setting] = read(out / str(setting) / "hptune.db")
        print(f"seeds_together {setting}: {seconds[setting] / 60:.1f} min", flush=True)
    print(f"ratio {seconds[False] / seconds['auto']:.2f}x")
    for setting, store in stores.items():
        decisions = {name: study["decision"] for name, study in store.items()}
        print(f"decisions ({setting}): {json.dumps(decisions)}")
    found = [d for d in differences(stores[False], stores["auto"], 0.0) if "decision" in d]
    print("same decisions" if not found else "decisions differ:\n" + "\n".join(found))
    values = differences(stores[False], stores["auto"], 1e-3)
    print(f"{len(values)} differences of trials or decisions at a relative tolerance of 1e-3")


def main() -> None:
    import warnings

    from transformers.utils import logging

    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=UserWarning)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 examples, K = 1 and 2")
    parser.add_argument("--larger", action="store_true", help="the 22M model (hidden 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per K (the fastest)")
    parser.add_argument("--seeds", type=int, nargs="+", help="the Ks to time (default 1 3 5)")
    parser.add_argument("--whole-run", action="store_true", help="the demo's run both ways")
    parser.add_argument("--dropout", type=float, help="with --whole-run: the LoRA dropout")
    args = parser.parse_args()
    if args.whole_run:
        whole_run(args.dropout)
        return
    name, model_path = "demo", None
    if args.larger:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from trial_overhead import _larger_model

        name, model_path = _larger_model(Path(tempfile.mkdtemp(prefix="hptune-larger-")))
    runner = _runner(64 if args.quick else 512, model_path)
    repeats = 1 if args.quick else args.repeats
    print(f"{name}: one epoch of {runner.data.n_train} examples (validation on "
          f"{len(runner.data.validation)}), batch {BATCH}, LoRA r 8 all-linear, no dropout, "
          f"rate {RATE:g}, clipped to {CLIP:g}; seed-epochs per second, the fastest of "
          f"{repeats} (whole runs; training steps alone)")  # fmt: skip
    print(f"{'K':>3} {'sequential':>11} {'together':>9} {'ratio':>6} {'steps ratio':>12} "
          f"{'max rel. diff':>14}")  # fmt: skip
    sequential(runner, [0])  # untimed: the base loaded, the starting loss measured once
    for k in args.seeds or ((1, 2) if args.quick else (1, 3, 5)):
        seeds = list(range(k))
        seq = [sequential(runner, seeds) for _ in range(repeats)]
        tog = [together(runner, seeds) for _ in range(repeats)]
        diff = max(abs(a - b) / abs(a) for a, b in zip(seq[0][2], tog[0][2], strict=True))
        seq_rate, tog_rate = k / min(s[0] for s in seq), k / min(t[0] for t in tog)
        steps = min(s[1] for s in seq) / min(t[1] for t in tog)
        print(f"{k:>3} {seq_rate:>11.3f} {tog_rate:>9.3f} {tog_rate / seq_rate:>5.2f}x "
              f"{steps:>11.2f}x {diff:>14.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
