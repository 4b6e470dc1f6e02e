"""The Python façade: the same operations as the ``hptune`` command."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hptune import pipeline
from hptune._display import ProgressPrinter, make_console, print_phase
from hptune.config import TuneConfig, load_config
from hptune.exceptions import HptuneDeprecationWarning, NoStorageYet
from hptune.plan import starting_point
from hptune.record import RunRecord, configured_phases
from hptune.stored import count_states, state_of
from hptune.train import make_runner

if TYPE_CHECKING:
    from hptune.hparams import HParams
    from hptune.results import PhaseResult, TuneResult
    from hptune.train.trainer import TrainerFactory
    from hptune.train.user import TrainFunction

__all__ = ["PhaseStatus", "run", "run_phase", "status", "tune"]


def _as_config(config: TuneConfig | str | os.PathLike[str]) -> TuneConfig:
    if isinstance(config, TuneConfig):
        return config
    return load_config(config)


def run(
    config: TuneConfig | str | os.PathLike[str],
    *,
    quiet: bool = False,
    train_fn: TrainFunction | None = None,
    trainer_factory: TrainerFactory | None = None,
) -> TuneResult:
    """Run every configured phase (resuming a stopped run) and return the decisions.

    Progress goes to stderr and one table per phase to stdout, unless ``quiet``. Each run is
    trained by the configured backend (``training.backend``), or by your own training:

    - ``train_fn(run)`` trains ``run.hparams`` with ``run.seed`` and calls
      ``run.report(epoch, model=model)`` after each epoch (False back: stop now);
    - ``trainer_factory(run)`` returns your ``transformers.Trainer``, built with
      ``run.training_arguments(...)``; hptune adds its callback and trains it.

    Args:
        config: The configuration, or the path of its YAML file.
        quiet: Print neither the progress nor the tables.
        train_fn: Your training of one seed of one trial (see `hptune.TrialRun`).
        trainer_factory: Builds your Trainer for one seed of one trial.

    Returns:
        The final configuration, each phase's decision and evidence, and the guardrails'
        findings.

    Raises:
        ConfigError: The configuration is invalid, its storage cannot be opened, a phase's
            study was started from another setup, or a guardrail refused it
            (``guardrails.strict``).
        DataError: A data file is missing, empty or malformed.
        ModelError: The model or its tokenizer cannot be loaded.
        UnsupportedError: The method cannot run on this machine (QLoRA without CUDA).
        Interrupted: SIGINT or SIGTERM stopped the run at a safe point; running it again
            resumes it.
    """
    config = _as_config(config)
    out = make_console(quiet=quiet)
    progress = ProgressPrinter(
        make_console(stderr=True, quiet=quiet),
        n_seeds=len(config.objective.seed_list),
        metric=config.objective.metric_name,
    )

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "phase_done":
            print_phase(out, event["result"], config.objective.metric_name)
        progress(event)

    runner = None
    if train_fn is not None or trainer_factory is not None:
        config.check_paths()
        runner = make_runner(config, train_fn=train_fn, trainer_factory=trainer_factory)
    return pipeline.tune(config, progress=on_event, runner=runner)


def tune(config: TuneConfig | str | os.PathLike[str], **options: Any) -> TuneResult:
    """Deprecated name of `run` (one entry point per job): call ``hptune.run``.

    Args:
        config: As for `run`.
        **options: As for `run`.

    Returns:
        What `run` returns.
    """
    warnings.warn(
        "hptune.tune is now hptune.run (the same arguments); hptune.tune goes away in the "
        "next release",
        HptuneDeprecationWarning,
        stacklevel=2,
    )
    return run(config, **options)


def run_phase(
    config: TuneConfig | str | os.PathLike[str],
    phase: str,
    base: HParams | None = None,
    *,
    train_fn: TrainFunction | None = None,
    trainer_factory: TrainerFactory | None = None,
) -> PhaseResult:
    """Run one phase on its own (or read back its decision), from ``base`` or the presets.

    ``phase`` is one of ``baseline``, ``learning_rate``, ``batch_size``, ``epochs``,
    ``regularization`` or ``final`` (the test-split evaluation).

    Args:
        config: The configuration, or the path of its YAML file.
        phase: The phase to run.
        base: The configuration the phase starts from; by default the user's values filled
            from the presets.
        train_fn: Your training of one seed of one trial (as for `run`).
        trainer_factory: Builds your Trainer for one seed of one trial (as for `run`).

    Returns:
        The phase's decision and the trials it was taken on.

    Raises:
        ValueError: An unknown phase name.
        ConfigError: The configuration is invalid, its storage cannot be opened, the phase's
            options do not fit ``base``, or its study was started from another setup.
        DataError: A data file is missing, empty or malformed.
        ModelError: The model or its tokenizer cannot be loaded.
        UnsupportedError: The method cannot run on this machine (QLoRA without CUDA).
    """
    config = _as_config(config)
    config.check_paths()
    runner = make_runner(config, train_fn=train_fn, trainer_factory=trainer_factory)
    start = starting_point(config, runner)  # the configuration fitted into any budget
    config, runner = start.config, runner.with_config(start.config)
    return pipeline.run_phase(config, phase, base or start.hparams, runner=runner)


@dataclass(frozen=True)
class PhaseStatus:
    """What the storage holds for one phase.

    Args:
        phase: The phase's name.
        study_name: Its study in the storage (``<name>.<phase>``).
        state: ``done`` (decided), ``in progress`` or ``pending`` (not started).
        trials: How many of its trials are in each state (``complete``, ``pruned``,
            ``fail``...).
        best_value: The best value of its complete trials, or None.
        decision: Its decision as ``case: parameters``, or None while it has none.
    """

    phase: str
    study_name: str
    state: str  # "done", "in progress" or "pending"
    trials: dict[str, int]
    best_value: float | None
    decision: str | None


def status(config: TuneConfig | str | os.PathLike[str]) -> list[PhaseStatus]:
    """The state of each configured phase in the storage; never creates or changes it.

    Args:
        config: The configuration, or the path of its YAML file.

    Returns:
        One row per configured phase (and ``final`` when the test evaluation may run);
        every phase is ``pending`` when nothing has run yet.

    Raises:
        ConfigError: The configuration is invalid, or its storage cannot be opened.
    """
    config = config if isinstance(config, TuneConfig) else load_config(config, check_paths=False)
    try:
        record = RunRecord(config)
    except NoStorageYet:  # nothing has run yet: every phase pending
        return [
            PhaseStatus(p, config.study_name(p), "pending", {}, None, None)
            for p in configured_phases(config)
        ]
    choose = min if config.objective.goal == "minimize" else max
    rows = []
    for stored in record.phases():
        counts = count_states(stored.trials)
        decision = stored.decision
        decided = None if decision is None else f"{decision.case}: {decision.params or 'nothing'}"
        best = [t.value for t in stored.trials if state_of(t) == "complete" and t.value is not None]
        best_value = choose(best) if best else None
        rows.append(
            PhaseStatus(stored.phase, stored.study_name, stored.state, counts, best_value, decided)
        )
    return rows
