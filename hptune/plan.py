"""What a run would do, without training: phases, trial counts, compute, presets, guardrails."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hptune.config import TuneConfig, load_config

if TYPE_CHECKING:
    from hptune.guardrails import Finding
    from hptune.hparams import HParams

__all__ = [
    "DataSummary",
    "Plan",
    "PlannedPhase",
    "make_plan",
    "planned_phases",
    "scoring",
    "summarize_data",
]

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
    """The data as ``hptune plan`` shows it (see :class:`DataSummary`).

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
    percentiles = {q: lengths[min(len(lengths) - 1, q * len(lengths) // 100)]
                   for q in (50, 90, 99)}  # fmt: skip
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


@dataclass(frozen=True)
class PlannedPhase:
    """One phase's budget: trials x seeds x epochs, as an upper bound on seed-epochs.

    Args:
        phase: The phase's name.
        trials: Trials it runs at most.
        epochs: Epochs per trial, as shown: ``2``, ``2-4`` or ``<= 4``.
        seed_epochs: Epochs of all its trials on every seed.
        what: The phase in a few words.
    """

    phase: str
    trials: int
    epochs: str  # "2", or "2-4" for the epochs phase
    seed_epochs: int
    what: str


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
        memory: The batch phase's memory table (when it runs).
        data: The data's format, an example, its lengths and how it is scored.
    """

    hparams: HParams
    sources: dict[str, str]
    phases: list[PlannedPhase]
    seeds: list[int]
    n_train: int
    guardrails: list[Finding]
    storage: str
    memory: list[dict[str, Any]] = field(default_factory=list)
    data: DataSummary | None = None

    @property
    def seed_epochs(self) -> int:
        """Epochs of every phase's trials on every seed, at most."""
        return sum(p.seed_epochs for p in self.phases)

    @property
    def train_examples(self) -> int:
        """Training examples processed at most (pruning and early stopping only lower it)."""
        return self.seed_epochs * self.n_train


def planned_phases(
    config: TuneConfig, hp: HParams, n_train: int, *, has_test: bool
) -> list[PlannedPhase]:
    """Each configured phase's budget in trials and seed-epochs (an upper bound).

    Each phase states its own budget (``hptune.phases.Phase.planned``); a phase that
    decides the epochs passes its upper bound to the phases after it. Racing's extra seeds
    (``objective.max_seeds``) are counted: the best and up to three contenders, each once
    per extra seed, at the phase's longest run.

    Args:
        config: The run's configuration.
        hp: The starting configuration.
        n_train: Training examples.
        has_test: Whether the data has a test split (the final evaluation runs).

    Returns:
        One row per phase that would run, in order.
    """
    from hptune.phases import PHASES, racing_trials_at_most

    n = len(config.objective.seed_list)
    extra = len(config.objective.racing_seeds)
    names: list[str] = list(config.phases.run)
    if config.phases.test_evaluation and has_test:
        names.append("final")
    bounded: set[str] = set()
    planned = []
    for name in names:
        budget = PHASES[name].planned(config, hp, n_train)
        low, high = budget.epochs
        epochs = (
            f"{low}-{high}" if low != high else f"<= {high}" if "epochs" in bounded else str(high)
        )
        # Racing adds seeds to a few configurations not yet told apart, at their length.
        racing = racing_trials_at_most(extra, budget.trials) * high if name != "final" else 0
        what = budget.what + (
            f", racing up to {config.objective.max_seeds} seeds" if racing else ""
        )
        planned.append(PlannedPhase(name, budget.trials, epochs, n * budget.seed_epochs + racing,
                                    what))  # fmt: skip
        hp = hp.replace(**budget.bounds)
        bounded |= set(budget.bounds)
    return planned


def make_plan(config: TuneConfig | str | os.PathLike[str]) -> Plan:
    """Plan ``config``: loads the tokenizer and data (for sizes and checks), trains nothing.

    Args:
        config: The configuration, or the path of its YAML file.

    Returns:
        The starting configuration, each phase's budget, the batch phase's memory table and
        the guardrails' findings.

    Raises:
        ConfigError: The configuration is invalid.
        DataError: The data cannot be read.
    """
    from hptune import guardrails
    from hptune.phases import BatchSizePhase, make_phase
    from hptune.presets import resolve_hparams
    from hptune.train import make_runner

    if not isinstance(config, TuneConfig):
        config = load_config(config)
    config.check_paths()
    runner = make_runner(config)
    hp, sources = resolve_hparams(config, runner.data.n_train)
    seeds = config.objective.seed_list
    phases = planned_phases(config, hp, runner.data.n_train, has_test=runner.data.test is not None)
    memory = []
    if "batch_size" in config.phases.run:
        batch_phase = make_phase("batch_size", config, runner, hp)
        assert isinstance(batch_phase, BatchSizePhase)
        memory = batch_phase.memory_table()
    return Plan(
        hparams=hp,
        sources=sources,
        phases=phases,
        seeds=seeds,
        n_train=runner.data.n_train,
        guardrails=guardrails.check(config, hp, runner.data),
        storage=config.storage_display,
        memory=memory,
        data=summarize_data(config, runner.data, runner.tokenizer),
    )
