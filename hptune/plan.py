"""What a run would do, without training: phases, trial counts, compute, presets, guardrails."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hptune import guardrails
from hptune._plan_method import (
    candidates_together_summary,
    method_summary,
    seeds_together_summary,
)
from hptune.budget import BudgetFit, PlannedPhase, fit_budget, planned_phases
from hptune.config import TuneConfig, load_config
from hptune.exceptions import ConfigError, NoStorageYet
from hptune.phases import PHASES
from hptune.record import RunRecord
from hptune.start import resolve_hparams
from hptune.train import make_runner
from hptune.train.target import memory_check, memory_model, resolve_target, throughput_estimate

if TYPE_CHECKING:
    from hptune.guardrails import Finding
    from hptune.hparams import HParams
    from hptune.train import RunnerBase
    from hptune.train.target import MemoryCheck, Target

__all__ = [
    "DataSummary",
    "Plan",
    "PlannedPhase",
    "Start",
    "make_plan",
    "planned_phases",
    "scoring",
    "summarize_data",
]

#: The ``schema`` of ``hptune plan --json``'s output (``docs/plan.schema.json``).
PLAN_SCHEMA = "hptune.plan/1"

#: Marks around the trained part of the example ``hptune plan`` shows.
TRAINED_MARKS = ("⟦", "⟧")


@dataclass(frozen=True)
class DataSummary:
    """What ``hptune plan`` shows of the data.

    Args:
        format: The format detected or configured, with what it trains on.
        example: The first training example as the model reads it, the trained part
            between ``⟦`` and ``⟧``.
        length_percentiles: Token lengths of the training examples: ``{50: n, 90: n, ...}``.
        max_length: ``data.max_length``.
        dropped: Examples over ``max_length`` left out per split (``data.drop_long``).
        n_validation: Validation examples.
        scored: How the metric is scored, in words.
    """

    format: str
    example: str
    length_percentiles: dict[int, int]
    max_length: int
    dropped: dict[str, int]
    n_validation: int
    scored: str

    def lines(self) -> list[str]:
        """The summary as lines of text."""
        lengths = ", ".join(f"p{q} {n}" for q, n in self.length_percentiles.items())
        dropped = ", ".join(f"{n} {split}" for split, n in self.dropped.items())
        return [
            f"data format: {self.format}",
            f"tokens per training example: {lengths} (max_length {self.max_length}"
            + (f"; dropped as longer: {dropped})" if dropped else "; none longer)"),
            f"scored on: {self.scored}",
            f"first training example (trained on between {TRAINED_MARKS[0]} {TRAINED_MARKS[1]}):",
            self.example,
        ]


def summarize_data(config: TuneConfig, data: Any, tokenizer: Any) -> DataSummary:
    """The data as ``hptune plan`` shows it (see `DataSummary`).

    Args:
        config: The configuration (max_length, the metric).
        data: The runner's ``PreparedData``.
        tokenizer: Its tokenizer, to decode the example.

    Returns:
        The summary.
    """
    example = data.example
    parts: list[str] = []
    start = 0
    ids, labels = example.input_ids, example.labels
    for end in range(1, len(ids) + 1):
        if end == len(ids) or (labels[end] == -100) != (labels[start] == -100):
            text = tokenizer.decode(ids[start:end])
            trained = labels[start] != -100
            parts.append(f"{TRAINED_MARKS[0]}{text}{TRAINED_MARKS[1]}" if trained else text)
            start = end
    lengths = data.train_lengths
    percentiles = {q: lengths[min(len(lengths) - 1, q * len(lengths) // 100)] for q in (50, 90, 99)}
    percentiles[100] = lengths[-1]
    return DataSummary(
        format=data.format_description,
        example="".join(parts),
        length_percentiles=percentiles,
        max_length=config.data.max_length,
        dropped=dict(data.dropped),
        n_validation=data.n_validation,
        scored=scoring(config, data),
    )


def scoring(config: TuneConfig, data: Any) -> str:
    """How the metric is scored, in words (``hptune plan`` and the report say it).

    Args:
        config: The configuration (its metric).
        data: The runner's ``PreparedData``.

    Returns:
        E.g. ``chrf on 48 of 200 validation examples (a seeded subset, ...); the test split
        whole``.
    """
    objective = config.objective
    if objective.is_text_metric:
        return (
            f"{objective.metric_name} on {len(data.validation_prompts)} of {data.n_validation} "
            "validation examples (a seeded subset, the same for every trial); the test split "
            "whole"
        )
    return f"the validation loss on all {data.n_validation} validation examples"


@dataclass
class Plan:
    """The whole run as it would start now.

    Args:
        hparams: The starting configuration.
        sources: Where each starting value came from.
        phases: Each phase's budget, in order.
        seeds: The seeds every trial trains on.
        n_train: Training examples.
        guardrails: The guardrails' findings.
        storage: The storage URL, its password masked.
        data: The data's format, an example, its lengths and how it is scored.
        target: The machine planned for: ``name``, ``kind``, ``memory_gb``, ``dtype``
            assumed, ``source``.
        budget: How the phases were fitted into ``budget``; None without one.
        throughput: ``(examples per second, source)`` to plan time with; None if unknown.
        details: Each running phase's plan detail, by the phase's name
            (``Phase.plan_detail``: the batch phase's memory table, the LoRA rank phase's
            ranks with their parameters and memory).
        method: The method trained: its settings, parameters, who chose it, and the disk
            its kept checkpoints take at most (``hptune._plan_method.method_summary``).
    """

    hparams: HParams
    sources: dict[str, str]
    phases: list[PlannedPhase]
    seeds: list[int]
    n_train: int
    guardrails: list[Finding]
    storage: str
    data: DataSummary | None = None
    target: dict[str, Any] = field(default_factory=dict)
    budget: BudgetFit | None = None
    throughput: tuple[float, str] | None = None
    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)

    @property
    def memory(self) -> list[dict[str, Any]]:
        """The batch phase's memory table (when it runs): ``details["batch_size"]``."""
        return self.details.get("batch_size", [])

    @property
    def lora_ranks(self) -> list[dict[str, Any]]:
        """The LoRA rank phase's ranks (when it runs): ``details["lora_rank"]``."""
        return self.details.get("lora_rank", [])

    @property
    def seed_epochs(self) -> int:
        """Epochs of every phase's trials on every seed, at most: racing's included, and no
        more than a budget's limit (racing takes only what the budget has left)."""
        total = sum(p.seed_epochs for p in self.phases)
        return total if self.budget is None else min(total, self.budget.limit)

    @property
    def train_examples(self) -> int:
        """Training examples processed at most (pruning and early stopping only lower it)."""
        return self.seed_epochs * self.n_train

    @property
    def hours(self) -> float | None:
        """Training hours at most, at the plan's throughput; None when it is unknown."""
        if self.throughput is None:
            return None
        return self.train_examples / self.throughput[0] / 3600

    def to_dict(self) -> dict[str, Any]:
        """The plan as ``hptune plan --json`` prints it (``docs/plan.schema.json``)."""
        return {
            "schema": PLAN_SCHEMA,
            "target": dict(self.target),
            "starting_configuration": {
                key: {"value": value, "source": self.sources.get(key, "config / default")}
                for key, value in self.hparams.to_dict().items()
            },
            "seeds": list(self.seeds),
            "n_train": self.n_train,
            "phases": [dataclasses.asdict(p) for p in self.phases],
            "seed_epochs": self.seed_epochs,
            "train_examples": self.train_examples,
            "throughput": None
            if self.throughput is None
            else {"examples_per_second": self.throughput[0], "source": self.throughput[1]},
            "hours_at_most": self.hours,
            **{
                phase.plan_key: [dict(row) for row in self.details.get(name, [])]
                for name, phase in PHASES.items()
                if phase.plan_key is not None
            },
            "method": dict(self.method),
            "budget": None if self.budget is None else self.budget.to_dict(),
            "findings": [f.to_dict() for f in self.guardrails],
            "data": None if self.data is None else dataclasses.asdict(self.data),
            "storage": self.storage,
        }


@dataclass
class Start:
    """Where a run starts: what ``hptune run`` and ``hptune plan`` both work out first.

    Args:
        config: The configuration to run: the user's, or fitted into ``budget``.
        hparams: The starting configuration (presets filled, the batch fitted to memory).
        sources: Where each starting value came from.
        memory: The memory model against the target's limit; None without a limit.
        budget: The budget fit; None without ``budget``.
        throughput: ``(examples per second, source)`` to plan time with; None if unknown.
        target: The machine the run is planned for.
    """

    config: TuneConfig
    hparams: HParams
    sources: dict[str, str]
    memory: MemoryCheck | None
    budget: BudgetFit | None
    throughput: tuple[float, str] | None
    target: Target


def starting_point(config: TuneConfig, runner: RunnerBase) -> Start:
    """The starting configuration, fitted to the target's memory and into the budget.

    ``hptune run`` and ``hptune plan`` both start here, so they make the same cuts: GPU
    hours are converted at ``budget.examples_per_second``, else at the estimate from the
    target GPU. A budget fit the run recorded is made again as it was when the budget is
    the same, so every later start and every worker plans alike.

    Args:
        config: The run's configuration.
        runner: Its trainer (the data's sizes and lengths).

    Returns:
        The start; its ``config`` is the one to run.

    Raises:
        ConfigError: A budget that cannot be planned or is below the method's minimum.
    """
    # One way forward: each step takes what the one before produced.
    target = resolve_target(config)
    model = memory_model(config, runner, target=target)
    memory = memory_check(config, runner, target=target, model=model)
    hp, sources = resolve_hparams(config, runner.data.n_train, memory)
    throughput = throughput_estimate(config, runner, target=target, model=model)
    fit = fit_budget(
        config,
        hp,
        runner.data.n_train,
        has_test=runner.data.test is not None,
        throughput=throughput,
        stored=_recorded_fit(config),
    )
    return Start(fit.config if fit else config, hp, sources, memory, fit, throughput, target)


def _recorded_fit(config: TuneConfig) -> dict[str, Any] | None:
    """The budget fit a run of ``config``'s name recorded; None before anything ran."""
    if config.budget is None:
        return None
    try:
        return RunRecord(config).budget_fit()
    except (NoStorageYet, ConfigError):  # nothing ran (a PostgreSQL database without tables
        return None  # is refused as ConfigError here); the run's own open reports real errors


def make_plan(
    config: TuneConfig | str | os.PathLike[str], *, examples_per_second: float | None = None
) -> Plan:
    """Plan ``config``: loads the tokenizer and data (for sizes and checks), trains nothing.

    Args:
        config: The configuration, or the path of its YAML file.
        examples_per_second: A measured throughput to give the hours at (by default
            ``budget.examples_per_second``, else an estimate from the target GPU); the budget
            is fitted as ``hptune run`` fits it, without it.

    Returns:
        The starting configuration, each phase's budget (fitted into ``budget``), the batch
        phase's memory table and the guardrails' findings.

    Raises:
        ConfigError: The configuration is invalid, or its budget below the method's minimum.
        DataError: The data cannot be read.
    """
    if not isinstance(config, TuneConfig):
        config = load_config(config)
    config.check_paths()
    # Planning may be for another machine (training.device): QLoRA is planned on a CPU too.
    runner = make_runner(config, check_method=False)
    start = starting_point(config, runner)
    config, hp = start.config, start.hparams
    phases = planned_phases(config, hp, runner.data.n_train, has_test=runner.data.test is not None)
    target = start.target
    details = {
        name: PHASES[name].plan_detail(config, hp, runner, target) for name in config.phases.run
    }
    trials = sum(p.trials for p in phases)
    method = method_summary(config, target.dtype(config.model), trials)
    method["seeds_together"] = seeds_together_summary(config, runner, hp)
    method["candidates_together"] = candidates_together_summary(config, runner, hp)
    return Plan(
        hparams=hp,
        sources=start.sources,
        phases=phases,
        seeds=config.objective.seed_list,
        n_train=runner.data.n_train,
        guardrails=guardrails.check(config, hp, runner.data, start.memory),
        storage=config.storage_display,
        data=summarize_data(config, runner.data, runner.tokenizer),
        target=target.to_dict(config.model),
        budget=start.budget,
        throughput=(examples_per_second, "given") if examples_per_second else start.throughput,
        details={name: rows for name, rows in details.items() if rows},
        method=method,
    )
