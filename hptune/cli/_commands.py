"""What each ``hptune`` command does, once its arguments are parsed."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Callable
from pathlib import Path

from hptune import presets
from hptune._api import run, status
from hptune._display import DIAGNOSIS_COLUMNS, diagnosis_cells, make_console, make_table
from hptune._export import export
from hptune._lazy import optuna_dashboard
from hptune.cli._plan import print_plan
from hptune.config import load_config
from hptune.demo import ensure_demo
from hptune.exceptions import NoStorageYet
from hptune.plan import make_plan
from hptune.record import RunRecord, diagnosed_phases
from hptune.report import write_report
from hptune.storage import driver_url

__all__ = ["HANDLERS"]


def _run_command(args: argparse.Namespace) -> int:
    run(args.config, quiet=args.quiet)
    return 0


def _status_command(args: argparse.Namespace) -> int:
    rows = status(args.config)
    cells = [
        (
            row.phase,
            row.study_name,
            row.state,
            ", ".join(f"{n} {state}" for state, n in sorted(row.trials.items())) or "-",
            "-" if row.best_value is None else f"{row.best_value:.4g}",
            row.decision or "-",
        )
        for row in rows
    ]
    columns = ("phase", "study", "state", "trials", "best value", "decision")
    console = make_console()
    console.print(make_table(f"hptune status: {args.config}", columns, cells))
    if any(row.state != "pending" for row in rows):
        console.print(_trained(args.config), highlight=False, markup=False)
    return 0


def _trained(path: str) -> str:
    """What the run has trained so far, beside its compute budget."""
    config = load_config(path, check_paths=False)
    spent = RunRecord(config).trained()
    line = (
        f"trained so far: {spent['seed_epochs']:g} seed-epochs, "
        f"{spent['gpu_seconds'] / 3600:.3g} GPU hours"
    )
    budget = config.budget
    if budget is not None:
        line += (
            f" (budget: {budget.seed_epochs} seed-epochs)"
            if budget.seed_epochs
            else f" (budget: {budget.gpu_hours:g} GPU hours)"
        )
    return line


def _export_command(args: argparse.Namespace) -> int:
    for path in export(args.config, args.output):
        print(path)
    return 0


def _report_command(args: argparse.Namespace) -> int:
    for path in write_report(args.config, args.output):
        print(path)
    return 0


def _plan_command(args: argparse.Namespace) -> int:
    plan = make_plan(args.config, examples_per_second=args.examples_per_second)
    # Exit as hptune run would: 2 when an error-level finding (guardrails.strict) refuses it.
    refused = 2 if any(f.level == "error" for f in plan.guardrails) else 0
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_plan(make_console(), plan, refused=bool(refused))
    return refused


def _diagnose_command(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_paths=False)
    diagnosed_phases(args.phase, args.trial)  # a wrong argument is said before the storage
    rows = RunRecord(config).diagnoses(phase=args.phase, trial=args.trial)
    cells = [diagnosis_cells(phase, number, d) for phase, number, d in rows]
    table = make_table(f"hptune diagnose: {args.config}", DIAGNOSIS_COLUMNS, cells)
    make_console().print(table)
    return 0


def _dashboard_command(args: argparse.Namespace) -> int:
    config = load_config(args.config, check_paths=False)
    url = config.storage_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise NoStorageYet(f"no storage at {config.storage_display!r}; run 'hptune run' first")
    if not _is_loopback(args.host):
        print(
            f"hptune: WARNING: serving the dashboard on {args.host}: anyone who can reach this "
            "machine can read and change the studies (optuna-dashboard has no login). Use "
            "--host 127.0.0.1 and an SSH tunnel unless this network is trusted.",
            file=sys.stderr,
        )
    where = f"http://{args.host}:{args.port}/"
    print(
        f"hptune: optuna-dashboard for {config.storage_display} on {where} (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    optuna_dashboard.run_server(driver_url(url), host=args.host, port=args.port)
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _presets_command(args: argparse.Namespace) -> int:
    p = presets
    situations = [
        (
            name,
            s.description,
            s.method,
            f"{s.learning_rate:g}",
            *map(str, (s.batch_size, s.gradient_accumulation_steps, s.epochs)),
        )
        for name, s in p.SITUATIONS.items()
    ]
    tables: list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]] = [
        (
            "learning rate by method",
            ("method", "learning rate"),
            [(method, f"{value:g}") for method, value in p.LEARNING_RATE_BY_METHOD.items()],
        ),
        (
            "batch size by GPU memory",
            ("GPU memory", "batch size"),
            [
                (f">= {at_least:g} GB", f"{low}-{high}")
                for at_least, (low, high) in p.BATCH_SIZE_BY_GPU_MEMORY
            ],
        ),
        (
            "epochs by training-set size",
            ("training examples", "epochs"),
            [
                (f"< {below:,.0f}" if below != float("inf") else "more", f"{low}-{high}")
                for below, (low, high) in p.EPOCHS_BY_TRAIN_SIZE
            ],
        ),
        (
            "starting configurations by situation (training.situation)",
            ("name", "situation", "method", "LR", "batch", "grad. accumulation", "epochs"),
            situations,
        ),
    ]
    console = make_console()
    for title, columns, rows in tables:
        console.print(make_table(title, columns, rows))
    grids = "; ".join(
        f"{method} {', '.join(f'{x:g}' for x in grid)}"
        for method, grid in p.LEARNING_RATE_GRID_BY_METHOD.items()
    )
    console.print(
        f"warmup: {p.WARMUP_RATIO_RANGE[0]:.0%}-{p.WARMUP_RATIO_RANGE[1]:.0%} of all steps; "
        f"weight decay: {p.WEIGHT_DECAY_RANGE[0]:g}-{p.WEIGHT_DECAY_RANGE[1]:g}; "
        f"learning-rate grids: {grids}"
    )
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    print(ensure_demo())
    return 0


#: What runs each command, by its name.
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run_command,
    "status": _status_command,
    "export": _export_command,
    "report": _report_command,
    "plan": _plan_command,
    "diagnose": _diagnose_command,
    "dashboard": _dashboard_command,
    "presets": _presets_command,
    "demo": _demo_command,
}
