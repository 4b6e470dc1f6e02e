"""The ``hptune`` command: run, plan, status, diagnose, export, report, dashboard, presets, demo."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hptune import __version__
from hptune._lazy import LazyImport
from hptune.exceptions import BudgetSpent, HptuneError

if TYPE_CHECKING:
    from hptune.cli import _commands
else:
    # The command's start (--version, --help, a mistyped argument) loads none of what the
    # commands use (pydantic, optuna, rich): a command loads it when it runs.
    _commands = LazyImport("hptune.cli._commands")

__all__ = ["main"]


#: An option of a subcommand: its names (or the argument's name) and ``add_argument``'s keys.
_Option = tuple[tuple[str, ...], dict[str, Any]]


def _option(*names: str, **keys: Any) -> _Option:
    return names, keys


_CONFIG = _option("config")

#: Each subcommand: its name, its help and its arguments (hptune.cli._commands runs it).
_COMMANDS: list[tuple[str, str, list[_Option]]] = [
    (
        "run",
        "run the configured phases (resumes a stopped run)",
        [
            _option("config", help="the YAML configuration file"),
            _option("-q", "--quiet", action="store_true", help="print nothing but errors"),
        ],
    ),
    ("status", "what the storage holds for each phase", [_CONFIG]),
    (
        "export",
        "write the decided configuration as TrainingArguments + LoraConfig",
        [_CONFIG, _option("-o", "--output", help="directory (default: the run's output_dir)")],
    ),
    (
        "report",
        "an HTML (and Markdown) report: decisions, tables, plots, environment",
        [
            _CONFIG,
            _option(
                "-o",
                "--output",
                help="FILE.html (one self-contained page) or FILE.md (plots as SVG beside "
                "it); default: both in the run's output_dir",
            ),
        ],
    ),
    (
        "plan",
        "what a run would do, without training: budget, presets, guardrails",
        [
            _CONFIG,
            _option(
                "--examples-per-second",
                type=float,
                help="your measured throughput, to estimate the hours "
                "(budget.examples_per_second is what a GPU-hour budget is fitted with)",
            ),
            _option(
                "--json", action="store_true", help="print the plan as JSON (docs/plan.schema.json)"
            ),
        ],
    ),
    (
        "diagnose",
        "classify each trial's curves (diverged, not learning, ...) with remedies",
        [
            _CONFIG,
            _option("--phase", help="only this phase (e.g. learning_rate)"),
            _option("--trial", type=int, help="only this trial number (needs --phase)"),
        ],
    ),
    (
        "dashboard",
        "serve optuna-dashboard on the run's storage (127.0.0.1 by default)",
        [
            _CONFIG,
            _option("--host", default="127.0.0.1"),
            _option("--port", type=int, default=8080),
        ],
    ),
    ("presets", "print the recommendation tables", []),
    ("demo", "build the offline demo model and data (cached)", []),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hptune", description="Systematic hyperparameter tuning for LLM fine-tuning."
    )
    parser.add_argument("--version", action="version", version=f"hptune {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text, options in _COMMANDS:
        command = commands.add_parser(name, help=help_text)
        for names, keys in options:
            command.add_argument(*names, **keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hptune`` command.

    Args:
        argv: The arguments after ``hptune``; by default the process's.

    Returns:
        The exit status: 0 done, 2 an error (a mistake in the configuration, the data, the
        storage...), 3 the compute budget spent, 128 + the signal when interrupted.
    """
    args = _parser().parse_args(argv)
    try:
        return _commands.HANDLERS[args.command](args)
    except BudgetSpent as exc:  # not a mistake: the run did what the budget allowed
        print(f"hptune: budget spent: {exc}", file=sys.stderr)
        return 3
    except HptuneError as exc:
        print(f"hptune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        number = getattr(exc, "signal_number", signal.SIGINT)
        name = getattr(exc, "signal_name", "SIGINT")
        print(
            f"hptune: interrupted by {name}; a trial in progress was marked interrupted and "
            "runs again; run the same command again to go on",
            file=sys.stderr,
        )
        return 128 + int(number)


if __name__ == "__main__":
    sys.exit(main())
