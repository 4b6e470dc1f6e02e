"""Terminal output: progress lines while training, and a table per phase."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from hptune.phases import PHASES
from hptune.seeds import summarize

if TYPE_CHECKING:
    from hptune.budget import BudgetFit
    from hptune.diagnose import Diagnosis
    from hptune.guardrails import Finding
    from hptune.hparams import HParams
    from hptune.phases import Decision, TrialOutcome
    from hptune.results import PhaseResult

__all__ = [
    "DIAGNOSIS_COLUMNS",
    "ProgressPrinter",
    "describe_decision",
    "describe_hparams",
    "describe_params",
    "diagnosis_cells",
    "make_console",
    "make_table",
    "outcome_cells",
    "outcome_columns",
    "phase_table",
    "print_budget",
    "print_finding",
    "print_phase",
    "sorted_outcomes",
]


#: After "<time> <phase> trial <n>": a trial that stopped or never started, from its event.
_STOPPED = {
    "pruned": ": pruned after seed {seed} epoch {epoch} "
    "(behind the earlier trials on the same seeds and epoch)",
    "diverged": ": [bold red]diverged[/bold red] (seed {seed}, {at}); trial stopped and "
    "recorded as diverged. Remedy: learning rate / 10, clip gradients (see hptune diagnose)",
    "oom": ": [bold]out of memory[/bold] at batch {hparams.batch_size}; recorded, no later "
    "proposal will reach this batch",
    "over_budget": ": [bold]not started[/bold], over the compute budget: {why}",
}


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
        # For the run's time left: each phase's planned seed-epochs, until it is done.
        self.run_plan: dict[str, int] = {}
        self.finished: set[str] = set()
        self.phase = ""
        self.training_start: float | None = None
        self.run_done = 0
        # Seed-epochs finished phases planned and trained: racing, pruning, early stopping
        # and read-back trials leave a share of the bound unused, which the estimate uses.
        self.used = {"planned": 0, "trained": 0}
        self.expected: dict[str, int] = {}  # each phase's seed-epochs without racing
        self.waiting = ""  # the phase this worker is waiting in (printed once)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        run_level = {
            "guardrail": self._guardrail,  # before any phase: no phase or trial yet
            "run_start": self._run_start,
            "budget": self._budget,
            "phase_done": self._phase_done,
        }
        if kind in run_level:
            run_level[kind](event)
            return
        if kind != "waiting":
            self.waiting = ""
        elapsed = f"[dim]{time.monotonic() - self.start:6.0f}s[/dim]"
        where = f"{elapsed} {event.get('phase')} trial {event.get('trial', 0) + 1}"
        if kind == "phase_start":
            self._phase_start(event, elapsed)
        elif kind == "trial_start":
            self.n_trials[event["phase"]] = event["n_trials"]
        elif kind == "epoch":
            self._epoch(event, where)
        elif kind in _STOPPED:
            self._print(where + _STOPPED[kind].format(**event))
        elif kind == "reused":
            self._print(
                f"{where} {describe_hparams(event['hparams'], event['phase'])}: "
                f"already trained as {event['source']}; read back, not trained again"
            )
        elif kind == "waiting" and self.waiting != event["phase"]:  # once per wait, not per poll
            self.waiting = event["phase"]
            self._print(
                f"{elapsed} {event['phase']}: waiting for trials running elsewhere "
                "(or for a killed run's trial to go stale)"
            )

    def _print(self, line: str) -> None:
        self.console.print(line, highlight=False)

    def _guardrail(self, event: dict[str, Any]) -> None:
        print_finding(self.console, event["finding"])

    def _run_start(self, event: dict[str, Any]) -> None:
        self.run_plan = dict(event["seed_epochs"])
        self.expected = dict(event.get("without_racing", self.run_plan))
        self.n_seeds = event.get("n_seeds", self.n_seeds)  # a budget may have cut seeds

    def _budget(self, event: dict[str, Any]) -> None:
        print_budget(self.console, event["fit"])

    def _phase_done(self, event: dict[str, Any]) -> None:
        if event["phase"] == self.phase and self.phase not in self.finished:
            self.used["planned"] += self.planned
            self.used["trained"] += self.done
        self.finished.add(event["phase"])
        spent = event.get("spent")
        if spent:
            parts = "".join(
                f", {words} {spent[part]:g} of them"
                for part, words in (
                    ("racing", "racing"),
                    ("spare", "spare trials"),
                    ("rate_probes", "rate probes"),
                )
                if spent.get(part)
            )
            self._print(
                f"phase {event['phase']} trained {spent['seed_epochs']:g} seed-epochs{parts}"
            )

    def _phase_start(self, event: dict[str, Any], elapsed: str) -> None:
        self.phase_start = time.monotonic()
        self.training_start = self.training_start or self.phase_start
        self.planned = max(int(event.get("seed_epochs", 0)), 1)
        self.done = 0
        self.phase = event["phase"]
        self.run_plan[self.phase] = self.planned
        self._print(
            f"{elapsed} [bold]phase {event['phase']}[/bold]: "
            f"{event['n_trials']} trial(s) x {self.n_seeds} seed(s)"
        )

    def _epoch(self, event: dict[str, Any], where: str) -> None:
        self.done += 1
        self.run_done += 1
        score = event.get("score")
        extra = "" if score is None else f" {self.metric} {score:.1f}"
        extra += self._eta()
        total = self.n_trials.get(event["phase"], "?")
        described = describe_hparams(event["hparams"], event["phase"])
        if event.get("racing"):  # an extra paired seed for a configuration in question
            which = f"{where} (racing) {described} extra seed {event['seed']}"
        else:
            # past the count (a retry, a trial past an edge): no "5/3"
            of = f"/{total}" if event.get("trial", 0) < (total if total != "?" else 0) else ""
            which = f"{where}{of} {described} seed {event['seed_index'] + 1}/{self.n_seeds}"
        self._print(
            f"{which} epoch {event['epoch']}: "
            f"train_loss {event['train_loss']:.4f} eval_loss {event['eval_loss']:.4f}{extra}"
        )

    def _eta(self) -> str:
        """Time left at the pace so far: an estimate, and the upper bound beside it.

        The bound trains every planned seed-epoch, racing's extra seeds included; pruning,
        early stopping, racing not needed and configurations read back only shorten it. The
        estimate leaves racing out of the phases to come and scales what is left by the
        share of their plan the finished phases trained.
        """
        if not self.done:
            return ""
        now = time.monotonic()
        pace = (now - self.phase_start) / self.done
        left = max(self.planned - self.done, 0) * pace
        share = self.used["trained"] / self.used["planned"] if self.used["planned"] else 1.0
        text = f"phase eta ~{_duration(min(left * share, left))} (<= {_duration(left)})"
        if self.run_plan and self.training_start is not None:
            later = [n for n in self.run_plan if n != self.phase and n not in self.finished]
            run_pace = (now - self.training_start) / self.run_done
            bound = left + sum(self.run_plan[n] for n in later) * run_pace
            guess = left + sum(self.expected.get(n, self.run_plan[n]) for n in later) * run_pace
            guess = min(guess * share, bound)
            text += f", run eta ~{_duration(guess)} (<= {_duration(bound)})"
        return f" [dim]({text})[/dim]"


def _duration(seconds: float) -> str:
    """``45s``, ``12m05s`` or ``3h07m``: short enough for a progress line."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe_hparams(hp: HParams, phase: str = "") -> str:
    """A compact one-line view of a configuration (the regularization values in that phase)."""
    accumulation = hp.gradient_accumulation_steps
    text = f"lr={hp.learning_rate:g} bs={hp.batch_size}x{accumulation} ep={hp.epochs}"
    if phase == "final" or "weight_decay" in getattr(PHASES.get(phase), "params", ()):
        text += f" wd={hp.weight_decay:.3g} {hp.scheduler} warmup={hp.warmup_ratio:.3g}"
    if hp.lora_r is not None:
        text += f" r={hp.lora_r} alpha={hp.lora_alpha}"
    text += "".join(f" {k}={v:g}" if isinstance(v, float) else f" {k}={v}" for k, v in hp.args)
    return text


_SHORT = {"learning_rate": "lr"}
#: After the budget line when the cuts are the run's recorded fit, made again.
_AS_RECORDED = " (as this run recorded it: its cuts made again)"


def make_console(*, stderr: bool = False, quiet: bool = False) -> Console:
    """A console that keeps tables whole when the output is a file or a pipe (logs, CI)."""
    console = Console(stderr=stderr, quiet=quiet, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160
    return console


def make_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table with a title, its columns and its rows of text."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def print_finding(console: Console, finding: Finding) -> None:
    """A guardrail finding, its level in bold."""
    console.print(f"[bold yellow]{finding.level}[/bold yellow] {finding}", highlight=False)


def print_budget(console: Console, fit: BudgetFit) -> None:
    """The compute budget fitted into, and each cut it made."""
    console.print(
        f"budget: {fit.described}{_AS_RECORDED if fit.reapplied else ''}",
        highlight=False,
        markup=False,
    )
    for cut in fit.cuts:
        console.print(f"  cut: {cut}", highlight=False, markup=False)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


#: The columns of a training run's diagnosis, in the terminal and the report.
DIAGNOSIS_COLUMNS = ("phase", "trial", "seed", "diagnosis", "evidence", "remedy")


def diagnosis_cells(phase: str, number: int, diagnosis: Diagnosis) -> tuple[str, ...]:
    """One diagnosis's row: phase, trial, seed, what was found, its evidence and remedy."""
    seed = "-" if diagnosis.seed is None else str(diagnosis.seed)
    remedy = diagnosis.remedy_text or "-"
    return (phase, str(number), seed, diagnosis.kind, diagnosis.evidence, remedy)


def outcome_columns(metric: str) -> tuple[str, ...]:
    """The columns of a phase's table, in the terminal, the dashboard note and the report."""
    return (
        "trial",
        "params",
        "status",
        f"{metric} per seed",
        "mean",
        "std",
        "95% interval",
        "examples/s",
    )


def describe_params(params: dict[str, Any], short: dict[str, str] | None = None) -> str:
    """``learning_rate=0.005, batch_size=8`` (floats to 3 digits); ``preset`` for none.

    Args:
        params: A trial's parameters.
        short: Shorter names for some parameters (``{"learning_rate": "lr"}``).

    Returns:
        The parameters on one line.
    """
    short = short or {}
    return (
        ", ".join(
            f"{short.get(k, k)}={v:.3g}" if isinstance(v, float) else f"{short.get(k, k)}={v}"
            for k, v in params.items()
        )
        or "preset"
    )


def outcome_cells(o: TrialOutcome) -> tuple[str, ...]:
    """One trial's row: parameters, each seed's value, mean, spread, interval, throughput."""
    params = describe_params(o.params, _SHORT)
    values = " ".join(f"{v:.4g}" for _, v in sorted(o.seed_values.items())) or "-"
    interval = mean = std = "-"
    if o.seed_values:
        s = summarize(list(o.seed_values.values()))
        if s.ci_low is not None:
            interval = f"{s.ci_low:.4g} .. {s.ci_high:.4g}"
        mean, std = _fmt(s.mean), _fmt(s.std)
    speed = "-" if o.examples_per_second is None else f"{o.examples_per_second:.0f}"
    return (str(o.number), params, o.status, values, mean, std, interval, speed)


def sorted_outcomes(outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
    """Trials in the order of their parameters (a grid reads from low to high)."""
    return sorted(outcomes, key=lambda o: sorted(o.params.items()))


def describe_decision(decision: Decision) -> str:
    """``case``: the fixed values, e.g. ``tie_within_noise: learning_rate=0.005``."""
    chosen = (
        ", ".join(
            f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}"
            for k, v in decision.params.items()
        )
        or "nothing fixed"
    )
    return f"({decision.case}): {chosen}"


def phase_table(result: PhaseResult, metric: str) -> Table:
    """The trials of one phase: parameters, each seed's value, mean, spread, interval."""
    title = f"{result.study_name}" + (" (decided earlier)" if result.reused else "")
    cells = [outcome_cells(o) for o in sorted_outcomes(result.outcomes)]
    return make_table(title, outcome_columns(metric), cells)


def print_phase(console: Console, result: PhaseResult, metric: str) -> None:
    """A phase's table, then its decision and the reason for it."""
    console.print(phase_table(result, metric))
    decision = result.decision
    console.print(f"[bold]decision[/bold] {describe_decision(decision)}. {decision.reason}")
    console.print()
