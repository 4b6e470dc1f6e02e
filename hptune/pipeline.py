"""The pipeline: the configured phases in order, each in its own study of one storage.

Each phase's decision is stored on its study; a phase that already has one is not run
again, so ``hptune run`` after an interruption goes on with the first undecided phase.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hptune.config import TuneConfig
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.phases import DECISION_ATTR, BaselinePhase, Decision, LearningRatePhase, Phase
from hptune.presets import fill_training

if TYPE_CHECKING:
    import optuna

    from hptune.objective import ProgressCallback
    from hptune.phases import TrialOutcome
    from hptune.train import Runner

__all__ = ["PhaseResult", "TuneResult", "build_phases", "resolve_hparams", "tune"]


@dataclass
class PhaseResult:
    """A phase's study, its finished trials and its decision."""

    phase: str
    study_name: str
    decision: Decision
    outcomes: list[TrialOutcome]
    reused: bool  # decided by an earlier run; nothing was trained this time


@dataclass
class TuneResult:
    """What a run decided: the final configuration and each phase's evidence."""

    hparams: HParams
    sources: dict[str, str]
    phases: list[PhaseResult] = field(default_factory=list)


def build_phases(config: TuneConfig) -> list[Phase]:
    """The configured phases, in the method's order."""
    makers = {
        "baseline": lambda: BaselinePhase(),
        "learning_rate": lambda: LearningRatePhase(
            config.phases.learning_rate.grid, tie_break=config.phases.learning_rate.tie_break
        ),
    }
    return [makers[name]() for name in config.phases.run]


def resolve_hparams(config: TuneConfig, n_train: int) -> tuple[HParams, dict[str, str]]:
    """The baseline configuration: the user's values, filled from the presets."""
    training = config.training
    values, sources = fill_training(
        training.model_dump(),
        method=config.method.type,
        situation=training.situation,
        gpu_memory_gb=training.gpu_memory_gb,
        n_train_examples=n_train,
    )
    hp = HParams(**values, scheduler=training.scheduler, max_grad_norm=training.max_grad_norm)
    return hp, sources


def tune(
    config: TuneConfig, *, progress: ProgressCallback | None = None, runner: Runner | None = None
) -> TuneResult:
    """Run every configured phase that has no decision yet; return all decisions.

    Everything that can be refused (paths, method support, data) is checked before the
    storage is opened, so a bad configuration leaves no trace in it.
    """
    import optuna

    from hptune.train import Runner

    config.check_paths()
    runner = runner or Runner(config)
    hp, sources = resolve_hparams(config, runner.data.n_train)
    storage = _open_storage(config)
    # Failed trials are reported by hptune itself, without Optuna's logged traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    result = TuneResult(hparams=hp, sources=sources)
    for phase in build_phases(config):
        phase_result = _run_phase(config, storage, phase, hp, runner, progress)
        result.phases.append(phase_result)
        hp = phase_result.decision.apply(hp)
        if progress is not None:
            progress({"event": "phase_done", "phase": phase.name, "result": phase_result})
    result.hparams = hp
    return result


def _open_storage(config: TuneConfig) -> optuna.storages.BaseStorage:
    import optuna

    url = config.storage_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url)


def _run_phase(
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    phase: Phase,
    base: HParams,
    runner: Runner,
    progress: ProgressCallback | None,
) -> PhaseResult:
    import optuna

    from hptune.objective import SeedObjective

    study_name = config.study_name(phase.name)
    sampler = phase.create_sampler()
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction=config.objective.direction,
        sampler=sampler,
        load_if_exists=True,
    )
    _check_same_setup(study, phase, base, config, runner)
    if DECISION_ATTR in study.user_attrs:
        decision = Decision.from_json(study.user_attrs[DECISION_ATTR])
        return PhaseResult(phase.name, study_name, decision, _outcomes(study), reused=True)

    objective = SeedObjective(runner, phase, base, progress=progress)
    # optimize() marks a trial FAIL on an error or Ctrl-C, so none stays RUNNING, and lets
    # GridSampler stop the study; the loop goes on until every planned trial is done.
    while (remaining := phase.n_remaining(study.get_trials(deepcopy=False))) > 0:
        for failed in phase.to_retry(study.get_trials(deepcopy=False)):
            _requeue(study, failed)
        study.optimize(objective, n_trials=remaining)
    outcomes = _outcomes(study)
    decision = phase.decide(outcomes, base, config.objective.direction)
    study.set_user_attr(DECISION_ATTR, decision.to_json())
    return PhaseResult(phase.name, study_name, decision, outcomes, reused=False)


def _requeue(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """Queue a failed trial again with its parameters and its sampler state (e.g. grid id)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # system_attrs is marked experimental/deprecated
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=failed.params,
                distributions=failed.distributions,
                system_attrs={**failed.system_attrs, "hptune.retry_of": failed.number},
            )
        )


def _outcomes(study: optuna.Study) -> list[TrialOutcome]:
    import optuna

    from hptune.objective import outcome_from_trial

    # Failed trials were retried before a decision; only complete and pruned ones count.
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [outcome_from_trial(t) for t in study.get_trials(states=done)]


def _check_same_setup(
    study: optuna.Study, phase: Phase, base: HParams, config: TuneConfig, runner: Runner
) -> None:
    """Record what the phase starts from; refuse to mix trials from another setup."""
    setup = {
        "phase": phase.name,
        "base_hparams": base.to_dict(),
        "metric": config.objective.metric,
        "seeds": config.objective.seed_list,
        "model": config.model.path,
        "method": config.method.model_dump(),
        "fingerprints": runner.data.fingerprints,
    }
    stored = study.user_attrs.get("hptune.setup")
    if stored is None:
        study.set_user_attr("hptune.setup", setup)
        from hptune.train.metrics import bleu_signature

        study.set_user_attr("hptune.bleu_signature", bleu_signature())
        return
    changed = sorted(k for k in setup if json.dumps(stored.get(k)) != json.dumps(setup[k]))
    if changed:
        raise ConfigError(
            f"study {study.study_name!r} in {config.storage_display!r} was run with another "
            f"{', '.join(changed)}; its trials cannot be mixed with this configuration's. "
            "Give the run a new name (the 'name' key) or a new storage."
        )
