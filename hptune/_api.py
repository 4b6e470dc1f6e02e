"""The Python façade: the same operations as the ``hptune`` command."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hptune.config import TuneConfig, load_config
from hptune.exceptions import ConfigError

if TYPE_CHECKING:
    from hptune.hparams import HParams
    from hptune.pipeline import PhaseResult, TuneResult

__all__ = ["PhaseStatus", "run", "run_phase", "status"]


def _as_config(config: TuneConfig | str | os.PathLike[str]) -> TuneConfig:
    if isinstance(config, TuneConfig):
        return config
    return load_config(config)


def run(config: TuneConfig | str | os.PathLike[str], *, quiet: bool = False) -> TuneResult:
    """Run every configured phase (resuming a stopped run) and return the decisions.

    Progress goes to stderr and one table per phase to stdout, unless ``quiet``.
    """
    from hptune._display import ProgressPrinter, make_console, print_phase
    from hptune.pipeline import tune

    config = _as_config(config)
    out = make_console(quiet=quiet)
    progress = ProgressPrinter(
        make_console(stderr=True, quiet=quiet),
        n_seeds=len(config.objective.seed_list),
        metric=config.objective.metric,
    )

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "phase_done":
            print_phase(out, event["result"], config.objective.metric)
        progress(event)

    return tune(config, progress=on_event)


def run_phase(
    config: TuneConfig | str | os.PathLike[str], phase: str, base: HParams | None = None
) -> PhaseResult:
    """Run one phase on its own (or read back its decision), from ``base`` or the presets.

    ``phase`` is one of ``baseline``, ``learning_rate``, ``batch_size``, ``epochs``,
    ``regularization`` or ``final`` (the test-split evaluation).
    """
    from hptune.pipeline import resolve_hparams
    from hptune.pipeline import run_phase as _run_phase
    from hptune.train import Runner

    config = _as_config(config)
    config.check_paths()
    runner = Runner(config)
    if base is None:
        base, _ = resolve_hparams(config, runner.data.n_train)
    return _run_phase(config, phase, base, runner=runner)


@dataclass(frozen=True)
class PhaseStatus:
    """What the storage holds for one phase."""

    phase: str
    study_name: str
    state: str  # "done", "in progress" or "pending"
    trials: dict[str, int]
    best_value: float | None
    decision: str | None


def status(config: TuneConfig | str | os.PathLike[str]) -> list[PhaseStatus]:
    """The state of each configured phase in the storage; never creates or changes it."""
    import optuna

    from hptune.phases import DECISION_ATTR, Decision

    config = config if isinstance(config, TuneConfig) else load_config(config, check_paths=False)
    phases: list[str] = list(config.phases.run)
    if config.phases.test_evaluation and (config.data.test or config.data.dataset is not None):
        phases.append("final")
    from hptune.storage import open_storage

    try:
        storage = open_storage(config, must_exist=True)
    except ConfigError as exc:
        if str(exc).startswith("no storage at"):  # nothing has run yet: every phase pending
            return [PhaseStatus(p, config.study_name(p), "pending", {}, None, None)
                    for p in phases]  # fmt: skip
        raise
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    rows = []
    for phase in phases:
        name = config.study_name(phase)
        if name not in existing:
            rows.append(PhaseStatus(phase, name, "pending", {}, None, None))
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        done = DECISION_ATTR in study.user_attrs
        decision = Decision.from_json(study.user_attrs[DECISION_ATTR]) if done else None
        decided = None if decision is None else f"{decision.case}: {decision.params or 'nothing'}"
        best = [t.value for t in trials if t.state.name == "COMPLETE" and t.value is not None]
        choose = min if config.objective.direction == "minimize" else max
        rows.append(
            PhaseStatus(
                phase,
                name,
                "done" if done else "in progress",
                counts,
                choose(best) if best else None,
                decided,
            )
        )
    return rows
