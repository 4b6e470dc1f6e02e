"""Which backend trains a configuration's runs: `make_runner`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.config import TuneConfig
from hptune.train._imports import import_function

if TYPE_CHECKING:
    from hptune.train.runner import RunnerBase
    from hptune.train.trainer import TrainerFactory
    from hptune.train.user import TrainFunction

__all__ = ["make_runner"]


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
    from hptune.exceptions import ConfigError

    training = config.training
    if train_fn is None and trainer_factory is None:
        search_dir = config.objective.search_dir
        if training.train_fn is not None:
            train_fn = import_function(training.train_fn, search_dir, key="training.train_fn",
                                       signature="(run: hptune.TrialRun) -> None")  # fmt: skip
        if training.trainer_factory is not None:
            trainer_factory = import_function(
                training.trainer_factory,
                search_dir,
                key="training.trainer_factory",
                signature="(run: hptune.TrialRun) -> transformers.Trainer",
            )
    if train_fn is not None and trainer_factory is not None:
        raise ConfigError("give train_fn or trainer_factory, not both: each trains every run")
    runner: Any
    if train_fn is not None:
        from hptune.train.user import FunctionRunner

        runner = FunctionRunner(config, train_fn, check_method=check_method)
    elif trainer_factory is not None or training.backend in ("trainer", "sft"):
        from hptune.train.trainer import TrainerRunner

        runner = TrainerRunner(config, trainer_factory, check_method=check_method)
    else:
        from hptune.train.loop import Runner

        runner = Runner(config, check_method=check_method)
    return runner
