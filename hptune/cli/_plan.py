"""What ``hptune plan`` prints: the target and method, the starting configuration, the
phases, the batch sizes' and LoRA ranks' memory, the compute, the budget and the guardrails."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from hptune._display import make_table, print_budget, print_finding

if TYPE_CHECKING:
    from rich.console import Console

    from hptune.plan import Plan

__all__ = ["print_plan"]


def print_plan(console: Console, plan: Plan, *, refused: bool) -> None:
    """The plan as tables and lines, in reading order.

    Args:
        console: Where to print.
        plan: The plan made for the configuration.
        refused: Whether ``hptune run`` would refuse it (an error-level guardrail finding).
    """
    for line in _setting(plan):
        console.print(line, highlight=False, markup=False)
    console.print(_values_table(plan))
    console.print(_phases_table(plan))
    if plan.details.get("batch_size", []):
        console.print(_memory_table(plan))
    if plan.details.get("lora_rank", []):
        _print_lora_ranks(console, plan)
    console.print(_compute(plan), highlight=False)
    if plan.budget is not None:
        fit = plan.budget
        print_budget(console, fit)
        if not fit.cuts:
            console.print(f"  fits without cuts ({fit.planned} <= {fit.limit} seed-epochs)")
        console.print(
            f"  racing, then spare trials: up to {fit.racing} seed-epochs at run time (the "
            f"budget less the plan without racing, {fit.planned}), while the phases still to "
            "come can be paid",
            highlight=False,
        )
    if not plan.guardrails:
        console.print("guardrails: no finding")
    for finding in plan.guardrails:
        print_finding(console, finding)
    if refused:
        console.print(
            "hptune run refuses this configuration (guardrails.strict): fix each "
            "error, or list its check under guardrails.ignore"
        )


def _size(size: float) -> str:
    return f"{size / 1e9:.3g} GB" if size >= 1e9 else f"{size / 1e6:.3g} MB"


def _setting(plan: Plan) -> list[str]:
    """The target, the method, its checkpoints' disk, seeds together and the data, in words."""
    lines = [f"target: {plan.target['described']}", f"method: {plan.method['described']}"]
    if "gguf" in plan.method:
        lines.insert(1, f"model: {plan.method['gguf']['described']}")
    kept = plan.method["checkpoints"]
    lines.append(
        "checkpoints: off (training.checkpoints: false)"
        if kept is None
        else f"checkpoints: at most {_size(kept['at_most_bytes'])} on disk ({kept['kept_at_most']} "
        f"kept at most, the best and last epoch of each seed of each completed trial, "
        f"{_size(kept['per_checkpoint_bytes'])} each)"
    )
    together = plan.method.get("seeds_together")
    if together is not None:
        lines.append(together["described"])
    candidates = plan.method.get("candidates_together")
    if candidates is not None and candidates["setting"]:  # off: a line in the JSON only
        lines.append(candidates["described"])
    if plan.data is not None:
        lines += plan.data.lines()
    return lines


def _values_table(plan: Plan) -> Table:
    rows = [
        (
            key,
            f"{value:g}" if isinstance(value, float) else str(value),
            plan.sources.get(key, "config / default"),
        )
        for key, value in plan.hparams.to_dict().items()
    ]
    return make_table("starting configuration", ("key", "value", "from"), rows)


def _phases_table(plan: Plan) -> Table:
    title = f"phases ({len(plan.seeds)} seeds each; storage {plan.storage})"
    columns = ("phase", "trials", "epochs", "seed-epochs (at most)", "what")
    rows = [(p.phase, str(p.trials), p.epochs, str(p.seed_epochs), p.what) for p in plan.phases]
    return make_table(title, columns, rows)


def _memory_table(plan: Plan) -> Table:
    rows = [
        (str(row["batch_size"]), f"{row['predicted_gb']:.4g}", "yes" if row["fits"] else "no")
        for row in plan.details.get("batch_size", [])
    ]
    return make_table(
        "batch sizes: predicted memory of a training step",
        ("batch", "predicted GiB", "fits the limit"),
        rows,
    )


def _print_lora_ranks(console: Console, plan: Plan) -> None:
    ranks = Table(
        title="LoRA ranks: trainable parameters and predicted memory of a step "
        f"(batch {plan.hparams.batch_size})"
    )
    for column in ("rank", "alpha", "trainable parameters", "predicted GiB"):
        ranks.add_column(column)
    for row in plan.details.get("lora_rank", []):
        trainable, gb = f"{row['trainable_parameters']:,}", f"{row['predicted_gb']:.4g}"
        alpha = ", ".join(map(str, row.get("lora_alphas", [row["lora_alpha"]])))
        ranks.add_row(str(row["r"]), alpha, trainable, gb)
    console.print(ranks)


def _compute(plan: Plan) -> str:
    compute = (
        f"compute: at most {plan.seed_epochs} seed-epochs = {plan.train_examples:,} training "
        f"examples ({plan.n_train:,} per epoch); pruning, early stopping and configurations "
        "already trained by an earlier phase lower it"
    )
    if plan.hours is not None and plan.throughput is not None:
        rate, source = plan.throughput
        compute += f"; at {rate:.4g} examples/s ({source}): at most {plan.hours:.2f} h"
    return compute
