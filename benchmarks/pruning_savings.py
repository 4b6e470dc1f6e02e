"""How much epoch compute the paired pruner saves in the epochs and regularization phases.

Runs both phases twice on the demo from the same starting configuration, once with pruning
and once without (each in its own storage), and prints the epochs trained (seeds x epochs,
over every trial that trained; configurations read back from an earlier phase cost nothing
in both runs), the share pruning saved, and whether each phase decided the same.

    .venv/bin/python benchmarks/pruning_savings.py [--seeds 3] [--reg-trials 8] [--quick]
        [--epochs LOW HIGH] [--eval-steps N]

``--eval-steps N`` adds a third run, pruning with looks every N optimizer steps within an
epoch (``training.eval_steps``); epochs trained are then counted in training examples
(a run pruned within an epoch trained part of it). ``--epochs 1 2`` gives the long-epoch
regime where per-epoch looks leave the pruner little to stop.

``--quick`` (a smoke test: 2 seeds, 2 regularization trials, 32 training and 32 validation
examples, epochs 1-2) checks the machinery in about a minute; its figures say nothing.

Early stopping (patience 2) is on in both runs, so the saving shown is the pruner's alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from hptune.config import load_config
from hptune.hparams import HParams
from hptune.pipeline import run_phase
from hptune.storage import open_storage
from hptune.train import Runner

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"


def epochs_trained(study_name: str, storage: object, examples_per_epoch: int | None = None
                   ) -> float:  # fmt: skip
    """Seed-epochs actually trained by a phase's trials (read-back trials count zero): whole
    epochs, or with ``examples_per_epoch`` the examples trained over an epoch's."""
    import optuna

    total = 0.0
    study = optuna.load_study(study_name=study_name, storage=storage)
    for trial in study.get_trials(deepcopy=False):
        if "reused_from" in trial.user_attrs:
            continue
        for run in trial.user_attrs.get("runs", []):
            if examples_per_epoch is None:
                total += len(run["epochs"])  # whole epochs: printed as a count
            else:  # rates x seconds: the examples the run trained
                examples = run["examples_per_second"] * run["seconds"]
                total += examples / examples_per_epoch
    return total if examples_per_epoch is not None else int(total)


def run_variant(pruning: bool, args: argparse.Namespace, workdir: Path,
                eval_steps: int | None = None) -> dict:  # fmt: skip
    raw = yaml.safe_load(DEMO.read_text())
    raw["name"] = ("looks" if eval_steps else "prune") if pruning else "noprune"
    raw["objective"]["seeds"] = args.seeds
    raw["phases"]["epochs"] = {"pruning": pruning}
    if args.quick:
        raw["training"]["max_train_examples"] = 32
        raw["training"]["max_validation_examples"] = 32
        raw["objective"]["eval_samples"] = 4
        raw["phases"]["epochs"]["range"] = [1, 2]
    if args.epochs:
        raw["phases"]["epochs"]["range"] = list(args.epochs)
        raw["phases"]["epochs"]["extend_edges"] = 0  # the range the comparison is about
    if eval_steps:
        raw["training"]["eval_steps"] = eval_steps
    raw["phases"]["regularization"] = {"n_trials": args.reg_trials, "pruning": pruning}
    raw["output_dir"] = str(workdir / raw["name"])
    path = workdir / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    runner = Runner(config)
    storage = open_storage(config)
    base = HParams(learning_rate=args.lr, batch_size=args.batch, gradient_accumulation_steps=32
                   // args.batch, epochs=2, warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip
    start = time.perf_counter()
    out = {}
    per_epoch = len(runner.data.train) if args.eval_steps else None
    for phase in ("epochs", "regularization"):
        result = run_phase(config, phase, base, runner=runner, storage=storage)
        out[phase] = {
            "epochs_trained": epochs_trained(result.study_name, storage, per_epoch),
            "decision": result.decision.params,
            "pruned": sum(o.status == "pruned" for o in result.outcomes),
            "trials": len(result.outcomes),
        }
        base = result.decision.apply(base)
    out["seconds"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reg-trials", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-3, help="the demo's decided rate")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="a smoke test (see above)")
    parser.add_argument(
        "--epochs",
        type=int,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="the epochs phase's range (default: the demo's)",
    )
    parser.add_argument(
        "--eval-steps", type=int, help="also prune with looks every N optimizer steps (a third run)"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.reg_trials = 2, 2
    with tempfile.TemporaryDirectory(prefix="hptune-prune-") as tmp:
        with_pruning = run_variant(True, args, Path(tmp))
        without = run_variant(False, args, Path(tmp))
        with_looks = (run_variant(True, args, Path(tmp), args.eval_steps)
                      if args.eval_steps else None)  # fmt: skip
    if with_looks is not None:
        _print_looks(args, without, with_pruning, with_looks)
        return
    print(f"demo, {args.seeds} seeds, regularization budget {args.reg_trials} trials, "
          f"start lr={args.lr:g} batch={args.batch}x{32 // args.batch}")  # fmt: skip
    header = f"{'phase':<16}{'epochs w/o':>12}{'epochs with':>13}{'saved':>8}{'pruned':>9}"
    print(header + "  same decision")
    totals = [0, 0]
    for phase in ("epochs", "regularization"):
        a, b = without[phase], with_pruning[phase]
        totals[0] += a["epochs_trained"]
        totals[1] += b["epochs_trained"]
        saved = 1 - b["epochs_trained"] / a["epochs_trained"]
        print(f"{phase:<16}{a['epochs_trained']:>12}{b['epochs_trained']:>13}{saved:>8.0%}"
              f"{b['pruned']:>5}/{b['trials']:<3}  {a['decision'] == b['decision']} "
              f"({b['decision'] or 'no change'})")  # fmt: skip
    print(f"{'both':<16}{totals[0]:>12}{totals[1]:>13}{1 - totals[1] / totals[0]:>8.0%}")
    print(f"wall time: {without['seconds']:.0f} s without pruning, "
          f"{with_pruning['seconds']:.0f} s with")  # fmt: skip


def _print_looks(args: argparse.Namespace, without: dict, per_epoch: dict, looks: dict) -> None:
    print(f"demo, {args.seeds} seeds, regularization budget {args.reg_trials} trials, "
          f"epochs {args.epochs or 'as the demo'}, start lr={args.lr:g} batch={args.batch}x"
          f"{32 // args.batch}; seed-epochs from the examples trained")  # fmt: skip
    print(
        f"{'phase':<16}{'w/o':>8}{'per epoch':>11}{'saved':>7}{'pruned':>8}"
        f"{'looks/' + str(args.eval_steps):>11}{'saved':>7}{'pruned':>8}  same decision"
    )
    totals = [0.0, 0.0, 0.0]
    for phase in ("epochs", "regularization"):
        a, b, c = without[phase], per_epoch[phase], looks[phase]
        trained = [a["epochs_trained"], b["epochs_trained"], c["epochs_trained"]]
        totals = [t + x for t, x in zip(totals, trained, strict=True)]
        print(f"{phase:<16}{trained[0]:>8.1f}{trained[1]:>11.1f}{1 - trained[1] / trained[0]:>7.0%}"
              f"{b['pruned']:>5}/{b['trials']:<2}{trained[2]:>11.1f}"
              f"{1 - trained[2] / trained[0]:>7.0%}{c['pruned']:>5}/{c['trials']:<2}  "
              f"{a['decision'] == b['decision']}, {a['decision'] == c['decision']}")  # fmt: skip
    print(f"{'both':<16}{totals[0]:>8.1f}{totals[1]:>11.1f}{1 - totals[1] / totals[0]:>7.0%}"
          f"{'':>8}{totals[2]:>11.1f}{1 - totals[2] / totals[0]:>7.0%}")  # fmt: skip
    print(f"wall time: {without['seconds']:.0f} s without pruning, {per_epoch['seconds']:.0f} s "
          f"per epoch, {looks['seconds']:.0f} s with looks")  # fmt: skip


if __name__ == "__main__":
    main()
