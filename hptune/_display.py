"""Terminal output: progress lines while training, and a table per phase."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from hptune.hparams import HParams
    from hptune.pipeline import PhaseResult

__all__ = ["ProgressPrinter", "describe_hparams", "make_console", "phase_table", "print_phase"]


class ProgressPrinter:
    """Prints one line per epoch of each seed (to stderr), with the time elapsed."""

    def __init__(self, console: Console, *, n_seeds: int, metric: str) -> None:
        self.console = console
        self.n_seeds = n_seeds
        self.metric = metric
        self.start = time.monotonic()
        self.n_trials: dict[str, int] = {}
        self.phase_start = self.start
        self.planned = 1
        self.done = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        elapsed = f"{time.monotonic() - self.start:6.0f}s"
        if kind == "guardrail":  # before any phase: no phase or trial yet
            finding = event["finding"]
            self.console.print(
                f"[bold yellow]{finding.level}[/bold yellow] {finding}", highlight=False
            )
            return
        where = f"[dim]{elapsed}[/dim] {event.get('phase')} trial {event.get('trial', 0) + 1}"
        if kind == "phase_start":
            self.phase_start = time.monotonic()
            self.planned = max(int(event.get("seed_epochs", 0)), 1)
            self.done = 0
            self.console.print(
                f"[dim]{elapsed}[/dim] [bold]phase {event['phase']}[/bold]: "
                f"{event['n_trials']} trial(s) x {self.n_seeds} seed(s)",
                highlight=False,
            )
        elif kind == "trial_start":
            self.n_trials[event["phase"]] = event["n_trials"]
        elif kind == "epoch":
            self.done += 1
            bleu = "" if event["bleu"] is None else f" bleu {event['bleu']:.1f}"
            bleu += self._eta()
            total = self.n_trials.get(event["phase"], "?")
            self.console.print(
                f"{where}/{total} {describe_hparams(event['hparams'], event['phase'])} "
                f"seed {event['seed_index'] + 1}/{self.n_seeds} epoch {event['epoch']}: "
                f"train_loss {event['train_loss']:.4f} eval_loss {event['eval_loss']:.4f}{bleu}",
                highlight=False,
            )
        elif kind == "pruned":
            self.console.print(
                f"{where}: pruned after seed {event['seed']} epoch {event['epoch']} "
                "(behind the median of earlier trials)",
                highlight=False,
            )
        elif kind == "diverged":
            self.console.print(
                f"{where}: [bold red]diverged[/bold red] (seed {event['seed']}, {event['at']}); "
                "trial stopped and recorded as diverged. Remedy: learning rate / 10, "
                "clip gradients (see hptune diagnose)",
                highlight=False,
            )
        elif kind == "oom":
            self.console.print(
                f"{where}: [bold]out of memory[/bold] at batch {event['hparams'].batch_size}; "
                "recorded, no later proposal will reach this batch",
                highlight=False,
            )
        elif kind == "reused":
            self.console.print(
                f"{where} {describe_hparams(event['hparams'], event['phase'])}: "
                f"already trained as {event['source']}; read back, not trained again",
                highlight=False,
            )
        elif kind == "waiting":
            self.console.print(
                f"[dim]{elapsed}[/dim] {event['phase']}: waiting for trials running elsewhere "
                "(or for a killed run's trial to go stale)",
                highlight=False,
            )

    def _eta(self) -> str:
        """Time left in the phase at the pace so far (an upper bound: pruning, early stopping
        and configurations read back from the storage only shorten it)."""
        if not self.done:
            return ""
        pace = (time.monotonic() - self.phase_start) / self.done
        left = max(self.planned - self.done, 0) * pace
        return f" [dim](phase eta <= {left:.0f}s)[/dim]"


def describe_hparams(hp: HParams, phase: str = "") -> str:
    """A compact one-line view of a configuration (the regularization values in that phase)."""
    accumulation = hp.gradient_accumulation_steps
    text = f"lr={hp.learning_rate:g} bs={hp.batch_size}x{accumulation} ep={hp.epochs}"
    if phase in ("regularization", "final"):
        text += f" wd={hp.weight_decay:.3g} {hp.scheduler} warmup={hp.warmup_ratio:.3g}"
    return text


_SHORT = {"learning_rate": "lr"}


def make_console(*, stderr: bool = False, quiet: bool = False) -> Console:
    """A console that keeps tables whole when the output is a file or a pipe (logs, CI)."""
    console = Console(stderr=stderr, quiet=quiet, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160
    return console


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def phase_table(result: PhaseResult, metric: str) -> Table:
    """The trials of one phase: parameters, each seed's value, mean, spread, interval."""
    table = Table(title=f"{result.study_name}" + (" (decided earlier)" if result.reused else ""))
    for column in (
        "trial",
        "params",
        "status",
        f"{metric} per seed",
        "mean",
        "std",
        "95% interval",
        "examples/s",
    ):
        table.add_column(column)
    from hptune.seeds import summarize

    for o in sorted(result.outcomes, key=lambda o: sorted(o.params.items())):
        params = ", ".join(f"{_SHORT.get(k, k)}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in o.params.items()) or "preset"  # fmt: skip
        values = " ".join(f"{v:.4g}" for _, v in sorted(o.seed_values.items())) or "-"
        if o.seed_values:
            s = summarize(list(o.seed_values.values()))
            interval = "-" if s.ci_low is None else f"{s.ci_low:.4g} .. {s.ci_high:.4g}"
            mean, std = _fmt(s.mean), _fmt(s.std)
        else:
            interval = mean = std = "-"
        speed = "-" if o.examples_per_second is None else f"{o.examples_per_second:.0f}"
        table.add_row(str(o.number), params, o.status, values, mean, std, interval, speed)
    return table


def print_phase(console: Console, result: PhaseResult, metric: str) -> None:
    console.print(phase_table(result, metric))
    decision = result.decision
    chosen = (
        ", ".join(
            f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}"
            for k, v in decision.params.items()
        )
        or "nothing fixed"
    )
    console.print(f"[bold]decision[/bold] ({decision.case}): {chosen}. {decision.reason}")
    console.print()
