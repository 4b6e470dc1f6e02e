"""The ``hptune`` command: run, status, export, presets, demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hptune.exceptions import HptuneError

__all__ = ["main"]


def _cmd_run(args: argparse.Namespace) -> int:
    from hptune._api import run

    run(args.config, quiet=args.quiet)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hptune._api import status
    from hptune._display import make_console

    table = Table(title=f"hptune status: {args.config}")
    for column in ("phase", "study", "state", "trials", "best value", "decision"):
        table.add_column(column)
    for row in status(args.config):
        trials = ", ".join(f"{n} {state}" for state, n in sorted(row.trials.items())) or "-"
        best = "-" if row.best_value is None else f"{row.best_value:.4g}"
        table.add_row(row.phase, row.study_name, row.state, trials, best, row.decision or "-")
    make_console().print(table)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from hptune.export import export

    for path in export(args.config, args.output):
        print(path)
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hptune import presets as p
    from hptune._display import make_console

    console = make_console()
    lr = Table(title="learning rate by method")
    lr.add_column("method")
    lr.add_column("learning rate")
    for method, value in p.LEARNING_RATE_BY_METHOD.items():
        lr.add_row(method, f"{value:g}")
    batch = Table(title="batch size by GPU memory")
    batch.add_column("GPU memory")
    batch.add_column("batch size")
    for at_least, (low, high) in p.BATCH_SIZE_BY_GPU_MEMORY:
        batch.add_row(f">= {at_least:g} GB", f"{low}-{high}")
    epochs = Table(title="epochs by training-set size")
    epochs.add_column("training examples")
    epochs.add_column("epochs")
    for below, (low, high) in p.EPOCHS_BY_TRAIN_SIZE:
        epochs.add_row(f"< {below:,.0f}" if below != float("inf") else "more", f"{low}-{high}")
    situations = Table(title="starting configurations by situation (training.situation)")
    for column in ("name", "situation", "method", "LR", "batch", "grad. accumulation", "epochs"):
        situations.add_column(column)
    for name, s in p.SITUATIONS.items():
        row = (s.batch_size, s.gradient_accumulation_steps, s.epochs)
        situations.add_row(name, s.description, s.method, f"{s.learning_rate:g}", *map(str, row))
    for table in (lr, batch, epochs, situations):
        console.print(table)
    console.print(
        f"warmup: {p.WARMUP_RATIO_RANGE[0]:.0%}-{p.WARMUP_RATIO_RANGE[1]:.0%} of all steps; "
        f"weight decay: {p.WEIGHT_DECAY_RANGE[0]:g}-{p.WEIGHT_DECAY_RANGE[1]:g}; "
        f"learning-rate grid: {', '.join(f'{x:g}' for x in p.DEFAULT_LEARNING_RATE_GRID)}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hptune.demo import ensure_demo

    print(ensure_demo())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hptune", description="Systematic hyperparameter tuning for LLM fine-tuning."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the configured phases (resumes a stopped run)")
    run.add_argument("config", help="the YAML configuration file")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    run.set_defaults(handler=_cmd_run)
    status = commands.add_parser("status", help="what the storage holds for each phase")
    status.add_argument("config")
    status.set_defaults(handler=_cmd_status)
    export = commands.add_parser(
        "export", help="write the decided configuration as TrainingArguments + LoraConfig"
    )
    export.add_argument("config")
    export.add_argument("-o", "--output", help="directory (default: the run's output_dir)")
    export.set_defaults(handler=_cmd_export)
    presets = commands.add_parser("presets", help="print the recommendation tables")
    presets.set_defaults(handler=_cmd_presets)
    demo = commands.add_parser("demo", help="build the offline demo model and data (cached)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except HptuneError as exc:
        print(f"hptune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hptune: interrupted; run the same command again to go on", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
