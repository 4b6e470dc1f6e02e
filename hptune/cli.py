"""The ``hptune`` command: run, plan, status, diagnose, export, report, dashboard, presets, demo."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from hptune.exceptions import BudgetSpent, HptuneError

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
    rows = status(args.config)
    for row in rows:
        trials = ", ".join(f"{n} {state}" for state, n in sorted(row.trials.items())) or "-"
        best = "-" if row.best_value is None else f"{row.best_value:.4g}"
        table.add_row(row.phase, row.study_name, row.state, trials, best, row.decision or "-")
    console = make_console()
    console.print(table)
    if any(row.state != "pending" for row in rows):
        from hptune.config import load_config
        from hptune.record import RunRecord

        config = load_config(args.config, check_paths=False)
        spent = RunRecord(config).trained()
        line = (f"trained so far: {spent['seed_epochs']:g} seed-epochs, "
                f"{spent['gpu_seconds'] / 3600:.3g} GPU hours")  # fmt: skip
        budget = config.budget
        if budget is not None:
            line += (f" (budget: {budget.seed_epochs} seed-epochs)" if budget.seed_epochs
                     else f" (budget: {budget.gpu_hours:g} GPU hours)")  # fmt: skip
        console.print(line, highlight=False, markup=False)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from hptune._export import export

    for path in export(args.config, args.output):
        print(path)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from hptune.report import write_report

    for path in write_report(args.config, args.output):
        print(path)
    return 0


def _size(size: float) -> str:
    return f"{size / 1e9:.3g} GB" if size >= 1e9 else f"{size / 1e6:.3g} MB"


def _cmd_plan(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hptune._display import AS_RECORDED, make_console
    from hptune.plan import make_plan

    plan = make_plan(args.config, examples_per_second=args.examples_per_second)
    # Exit as hptune run would: 2 when an error-level finding (guardrails.strict) refuses it.
    refused = 2 if any(f.level == "error" for f in plan.guardrails) else 0
    if args.json:
        import json

        print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
        return refused
    console = make_console()
    values = Table(title="starting configuration")
    for column in ("key", "value", "from"):
        values.add_column(column)
    for key, value in plan.hparams.to_dict().items():
        values.add_row(key, f"{value:g}" if isinstance(value, float) else str(value),
                       plan.sources.get(key, "config / default"))  # fmt: skip
    phases = Table(title=f"phases ({len(plan.seeds)} seeds each; storage {plan.storage})")
    for column in ("phase", "trials", "epochs", "seed-epochs (at most)", "what"):
        phases.add_column(column)
    for p in plan.phases:
        phases.add_row(p.phase, str(p.trials), p.epochs, str(p.seed_epochs), p.what)
    console.print(f"target: {plan.target['described']}", highlight=False, markup=False)
    console.print(f"method: {plan.method['described']}", highlight=False, markup=False)
    kept = plan.method["checkpoints"]
    disk = (
        "checkpoints: off (training.checkpoints: false)"
        if kept is None
        else f"checkpoints: at most {_size(kept['at_most_bytes'])} on disk ({kept['kept_at_most']} "
        f"kept at most, the best and last epoch of each seed of each completed trial, "
        f"{_size(kept['per_checkpoint_bytes'])} each)"
    )
    console.print(disk, highlight=False, markup=False)
    together = plan.method.get("seeds_together")
    if together is not None:
        console.print(together["described"], highlight=False, markup=False)
    if plan.data is not None:
        for line in plan.data.lines():
            console.print(line, highlight=False, markup=False)
    console.print(values)
    console.print(phases)
    if plan.memory:
        memory = Table(title="batch sizes: predicted memory of a training step")
        for column in ("batch", "predicted GB", "fits the limit"):
            memory.add_column(column)
        for row in plan.memory:
            memory.add_row(str(row["batch_size"]), f"{row['predicted_gb']:.4g}",
                           "yes" if row["fits"] else "no")  # fmt: skip
        console.print(memory)
    if plan.lora_ranks:
        ranks = Table(title="LoRA ranks: trainable parameters and predicted memory of a step "
                            f"(batch {plan.hparams.batch_size})")  # fmt: skip
        for column in ("rank", "alpha", "trainable parameters", "predicted GB"):
            ranks.add_column(column)
        for row in plan.lora_ranks:
            trainable, gb = f"{row['trainable_parameters']:,}", f"{row['predicted_gb']:.4g}"
            alpha = ", ".join(map(str, row.get("lora_alphas", [row["lora_alpha"]])))
            ranks.add_row(str(row["r"]), alpha, trainable, gb)
        console.print(ranks)
    compute = (
        f"compute: at most {plan.seed_epochs} seed-epochs = {plan.train_examples:,} training "
        f"examples ({plan.n_train:,} per epoch); pruning, early stopping and configurations "
        "already trained by an earlier phase lower it"
    )
    if plan.hours is not None and plan.throughput is not None:
        rate, source = plan.throughput
        compute += f"; at {rate:.4g} examples/s ({source}): at most {plan.hours:.2f} h"
    console.print(compute, highlight=False)
    if plan.budget is not None:
        fit = plan.budget
        console.print(f"budget: {fit.described}{AS_RECORDED if fit.reapplied else ''}",
                               highlight=False, markup=False)  # fmt: skip
        if not fit.cuts:
            console.print(f"  fits without cuts ({fit.planned} <= {fit.limit} seed-epochs)")
        for cut in fit.cuts:
            console.print(f"  cut: {cut}", highlight=False, markup=False)
    if not plan.guardrails:
        console.print("guardrails: no finding")
    for finding in plan.guardrails:
        console.print(f"[bold yellow]{finding.level}[/bold yellow] {finding}", highlight=False)
    if refused:
        console.print("hptune run refuses this configuration (guardrails.strict): fix each "
                      "error, or list its check under guardrails.ignore")  # fmt: skip
    return refused


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hptune._display import make_console
    from hptune.config import load_config
    from hptune.record import RunRecord, diagnosed_phases

    config = load_config(args.config, check_paths=False)
    diagnosed_phases(args.phase, args.trial)  # a wrong argument is said before the storage
    rows = RunRecord(config).diagnoses(phase=args.phase, trial=args.trial)
    table = Table(title=f"hptune diagnose: {args.config}")
    for column in ("phase", "trial", "seed", "diagnosis", "evidence", "remedy"):
        table.add_column(column)
    for phase, number, d in rows:
        seed = "-" if d.seed is None else str(d.seed)
        table.add_row(phase, str(number), seed, d.kind, d.evidence, d.remedy_text or "-")
    make_console().print(table)
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    import ipaddress

    from optuna_dashboard import run_server

    from hptune.config import load_config
    from hptune.exceptions import NoStorageYet

    config = load_config(args.config, check_paths=False)
    url = config.storage_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise NoStorageYet(f"no storage at {config.storage_display!r}; run 'hptune run' first")
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(
            f"hptune: WARNING: serving the dashboard on {args.host}: anyone who can reach this "
            "machine can read and change the studies (optuna-dashboard has no login). Use "
            "--host 127.0.0.1 and an SSH tunnel unless this network is trusted.",
            file=sys.stderr,
        )
    where = f"http://{args.host}:{args.port}/"
    print(f"hptune: optuna-dashboard for {config.storage_display} on {where} (Ctrl-C to stop)",
          file=sys.stderr, flush=True)  # fmt: skip
    from hptune.storage import driver_url

    run_server(driver_url(url), host=args.host, port=args.port)
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
        "learning-rate grids: "
        + "; ".join(
            f"{method} {', '.join(f'{x:g}' for x in grid)}"
            for method, grid in p.LEARNING_RATE_GRID_BY_METHOD.items()
        )
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
    from hptune import __version__

    parser.add_argument("--version", action="version", version=f"hptune {__version__}")
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
    report = commands.add_parser(
        "report", help="an HTML (and Markdown) report: decisions, tables, plots, environment"
    )
    report.add_argument("config")
    report.add_argument(
        "-o",
        "--output",
        help="FILE.html (one self-contained page) or FILE.md (plots as SVG beside it); "
        "default: both in the run's output_dir",
    )
    report.set_defaults(handler=_cmd_report)
    plan = commands.add_parser(
        "plan", help="what a run would do, without training: budget, presets, guardrails"
    )
    plan.add_argument("config")
    plan.add_argument(
        "--examples-per-second",
        type=float,
        help="your measured throughput, to estimate the hours (budget.examples_per_second "
        "is what a GPU-hour budget is fitted with)",
    )
    plan.add_argument(
        "--json", action="store_true", help="print the plan as JSON (docs/plan.schema.json)"
    )
    plan.set_defaults(handler=_cmd_plan)
    diagnose = commands.add_parser(
        "diagnose", help="classify each trial's curves (diverged, not learning, ...) with remedies"
    )
    diagnose.add_argument("config")
    diagnose.add_argument("--phase", help="only this phase (e.g. learning_rate)")
    diagnose.add_argument("--trial", type=int, help="only this trial number (needs --phase)")
    diagnose.set_defaults(handler=_cmd_diagnose)
    dashboard = commands.add_parser(
        "dashboard", help="serve optuna-dashboard on the run's storage (127.0.0.1 by default)"
    )
    dashboard.add_argument("config")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.set_defaults(handler=_cmd_dashboard)
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
    except BudgetSpent as exc:  # not a mistake: the run did what the budget allowed
        print(f"hptune: budget spent: {exc}", file=sys.stderr)
        return 3
    except HptuneError as exc:
        print(f"hptune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        number = getattr(exc, "signal_number", signal.SIGINT)
        name = getattr(exc, "signal_name", "SIGINT")
        print(f"hptune: interrupted by {name}; a trial in progress was marked interrupted and "
              "runs again; run the same command again to go on", file=sys.stderr)  # fmt: skip
        return 128 + int(number)


if __name__ == "__main__":
    sys.exit(main())
