"""Which backend trains a configuration's runs: `make_runner`, by what each backend class
declares (``RunnerBase.declared``, from `hptune.config._backends`)."""

from __future__ import annotations

from typing import Any

from hptune.config import TuneConfig
from hptune.exceptions import ConfigError
from hptune.train._imports import import_function
from hptune.train.loop import Runner
from hptune.train.runner import RunnerBase
from hptune.train.sft import SFTRunner
from hptune.train.trainer import TrainerFactory, TrainerRunner
from hptune.train.user import FunctionRunner, TrainFunction

__all__ = ["RUNNERS", "make_runner"]

#: The backend class of each ``training.backend`` name, by the name it declares.
RUNNERS: dict[str, type[RunnerBase]] = {
    runner.declared.name: runner for runner in (Runner, TrainerRunner, SFTRunner)
}


def make_runner(
    config: TuneConfig,
    *,
    train_fn: TrainFunction | None = None,
    trainer_factory: TrainerFactory | None = None,
    check_method: bool = True,
) -> RunnerBase:
    """The runner that trains ``config``'s runs.

    Args:
        config: The run's configuration; ``training.backend``, ``training.train_fn`` and
            ``training.trainer_factory`` choose the backend.
        train_fn: The user's training function (overrides ``training.train_fn``).
        trainer_factory: The user's Trainer factory (overrides ``training.trainer_factory``).
        check_method: Refuse a method this machine cannot train now (off to plan for
            another machine: ``hptune plan``).

    Returns:
        hptune's Accelerate loop, a Trainer / SFTTrainer backend, or the user's training.

    Raises:
        ConfigError: Both hooks were given, or a configured hook cannot be imported.
    """
    if train_fn is None and trainer_factory is None:
        train_fn = _configured(config, "train_fn", "(run: hptune.TrialRun) -> None")
        trainer_factory = _configured(
            config, "trainer_factory", "(run: hptune.TrialRun) -> transformers.Trainer"
        )
    if train_fn is not None and trainer_factory is not None:
        raise ConfigError("give train_fn or trainer_factory, not both: each trains every run")
    if train_fn is not None:
        return FunctionRunner(config, train_fn, check_method=check_method)
    if trainer_factory is not None:
        return TrainerRunner(config, trainer_factory, check_method=check_method)
    return RUNNERS[config.training.backend](config, check_method=check_method)


def _configured(config: TuneConfig, hook: str, signature: str) -> Any:
    """The function ``training.<hook>`` names, imported (None when it names none)."""
    name = getattr(config.training, hook)
    if name is None:
        return None
    return import_function(
        name, config.objective.search_dir, key=f"training.{hook}", signature=signature
    )
