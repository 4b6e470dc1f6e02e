"""The user's own training: a function hptune calls for each seed of each trial
(``train_fn``), given a `TrialRun` with the trial's hyperparameters, its seed, and a
reporter for each epoch's validation.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hptune._lazy import torch, transformers
from hptune.config._backends import TRAIN_FN
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.train._results import EpochCallback, EpochMetrics, RunJob, RunResult
from hptune.train.arguments import training_arguments
from hptune.train.runner import RunnerBase

__all__ = ["FunctionRunner", "TrainFunction", "TrialRun"]


class TrialRun:
    """One seed of one trial, as the user's ``train_fn`` or ``trainer_factory`` sees it.

    Attributes:
        hparams: The trial's hyperparameters (learning rate, batch size, accumulation,
            epochs, warmup ratio, weight decay, scheduler, gradient clipping).
        seed: The seed: runs of two configurations on one seed are compared in pairs, so use
            it for the initialisation and the data order.
        evaluate_test: True in the final evaluation: report the test split's values too.
        run_name: The trial's name in the storage (``<study>/trial-<n>``), for your logs.
        output_dir: A scratch folder for this run (removed after it).
        data: hptune's tokenized splits (``data.train``, ``data.validation``...).
        tokenizer: The configured model's tokenizer.
    """

    def __init__(
        self,
        runner: RunnerBase,
        hparams: HParams,
        seed: int,
        *,
        evaluate_test: bool = False,
        run_name: str | None = None,
    ) -> None:
        self._runner = runner
        self.hparams = hparams
        self.seed = seed
        self.evaluate_test = evaluate_test
        self.run_name = run_name
        self.output_dir: str | None = None
        self.data = runner.data
        self.tokenizer = runner.tokenizer
        self._report: Callable[..., bool] | None = None
        self._models: list[Any] = []  # handed out by model(), released after the run
        #: Seconds spent in `measure` (validation): not training time.
        self.measuring_seconds = 0.0

    def model(self) -> Any:
        """The configured model with a fresh adapter (LoRA, QLoRA) or whole (full), seeded.

        Returns:
            A model ready to train, as hptune's own backends start from.
        """
        transformers.set_seed(self.seed)
        model = self._runner.load_run_model(self.hparams)
        self._models.append(model)
        return model

    def release(self) -> None:
        """Free the models `model` handed out (a LoRA base drops their adapters)."""
        while self._models:
            self._runner.release_run_model(self._models.pop())

    def training_keys(self) -> dict[str, Any]:
        """The ``TrainingArguments`` keys of this run: the trial's values, its seed, the
        precision, and hptune's settings (it measures validation itself, saves nothing)."""
        config = self._runner.config
        trackers = list(config.training.report_to) if self.run_name is not None else []
        keys = training_arguments(config, self.hparams, self.seed)
        # With trackers, the Trainer logs under its output_dir (TensorBoard: <it>/runs/...):
        # the run's own folder, as the built-in loop's; otherwise a scratch folder.
        logs = Path(config.output_dir) / "logs" / f"{self.run_name}/seed-{self.seed}"
        scratch = self.output_dir or str(Path(config.output_dir) / "trainer")
        keys.update(
            output_dir=str(logs) if trackers else scratch,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="epoch" if trackers else "no",
            report_to=trackers or "none",
            disable_tqdm=True,
            remove_unused_columns=False,
            use_cpu=not torch.cuda.is_available(),
            logging_nan_inf_filter=False,
            dataloader_num_workers=0,
        )
        return keys

    def training_arguments(self, arguments_class: type | None = None, **overrides: Any) -> Any:
        """``TrainingArguments`` (or a subclass, e.g. TRL's ``SFTConfig``) for this run, with
        your own keys added.

        Args:
            arguments_class: The class to build, a ``TrainingArguments`` subclass such as
                ``trl.SFTConfig`` (default: ``TrainingArguments``).
            overrides: Any other keys of that class (``output_dir``, logging, SFT keys...).
                The tuned values (learning rate, batch size...) must not be changed: hptune
                refuses a Trainer that does not train them.

        Returns:
            An instance of ``arguments_class``.
        """
        cls = arguments_class or transformers.TrainingArguments
        return cls(**{**self.training_keys(), **overrides})

    def measure(self, model: Any) -> dict[str, float | None]:
        """hptune's validation of ``model`` now: the loss over every target token, the text
        metric (when the objective has one) and, in the final evaluation, the test split's.

        Args:
            model: The model being trained.

        Returns:
            ``eval_loss``, ``score``, ``test_loss``, ``test_score`` (None where not measured).
        """
        runner = self._runner
        began = time.perf_counter()
        device = next(model.parameters()).device
        loaders = runner.eval_loaders(self.hparams, device, test=self.evaluate_test)
        metrics = runner.measure_epoch(
            model, loaders, epoch=0, train_loss=math.nan, learning_rate=math.nan
        )
        model.train()
        self.measuring_seconds += time.perf_counter() - began
        return {
            "eval_loss": metrics.eval_loss,
            "score": metrics.score,
            "test_loss": metrics.test_loss,
            "test_score": metrics.test_score,
        }

    def report(
        self,
        epoch: int,
        *,
        model: Any = None,
        eval_loss: float | None = None,
        score: float | None = None,
        train_loss: float | None = None,
        learning_rate: float | None = None,
        test_loss: float | None = None,
        test_score: float | None = None,
    ) -> bool:
        """Report an epoch's validation; False means stop training now (pruned, stopped
        early, or diverged).

        Pass ``model`` and hptune measures it (recommended: every trial is then scored the
        same way), or pass the values you measured yourself.

        Args:
            epoch: The epoch just finished, from 1.
            model: The model, for hptune to measure.
            eval_loss: Your validation loss (without ``model``).
            score: Your text metric's value, when the objective is a text metric.
            train_loss: The epoch's mean training loss, for the learning-curve diagnosis.
            learning_rate: The learning rate at the end of the epoch.
            test_loss: In the final evaluation, the test split's loss.
            test_score: In the final evaluation, the test split's text metric.

        Returns:
            True to go on training, False to stop.

        Raises:
            ConfigError: Neither ``model`` nor ``eval_loss`` was given, or the objective's
                text metric has no ``score``.
        """
        if self._report is None:
            raise ConfigError("TrialRun.report: this run is not being tuned by hptune")
        if model is not None:
            measured = self.measure(model)
            eval_loss, score = measured["eval_loss"], measured["score"]
            test_loss, test_score = measured["test_loss"], measured["test_score"]
        checked = self._checked(eval_loss, score)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=math.nan if train_loss is None else float(train_loss),
            eval_loss=checked,
            score=None if score is None else float(score),
            learning_rate=math.nan if learning_rate is None else float(learning_rate),
            test_loss=test_loss,
            test_score=test_score,
        )
        return self._report(metrics)

    def _checked(self, eval_loss: float | None, score: float | None) -> float:
        """The reported validation loss; a report without the values the objective is scored
        on is refused."""
        if eval_loss is None:
            raise ConfigError(
                "TrialRun.report: pass model= (hptune measures it) or eval_loss= (your own "
                "validation loss)"
            )
        if self._runner.config.objective.is_text_metric and score is None:
            name = self._runner.config.objective.metric_name
            raise ConfigError(
                f"TrialRun.report: the objective is {name}: pass model= or score= as well"
            )
        return float(eval_loss)


#: The user's training of one seed of one trial: reports each epoch through ``run.report``
#: (or returns the final validation value, which counts as the last epoch's).
TrainFunction = Callable[[TrialRun], "float | None"]


class FunctionRunner(RunnerBase):
    """Trains each run with the user's ``train_fn`` (``hptune.run(config, train_fn=...)``).

    The function gets a `TrialRun` and reports each epoch with ``run.report``; its
    reports are the run's epochs, so pruning, early stopping, the seeds' pairing, the
    decisions and the report work as with hptune's own backends. A non-finite reported
    validation loss marks the run diverged.

    Args:
        config: The run's configuration (its data is read, for the plan, the presets and
            the validation hptune measures).
        train_fn: The user's training of one seed of one trial.

    Raises:
        DataError: A data file is missing, empty or malformed.
        ModelError: The model or its tokenizer cannot be loaded.
        ConfigError: ``training.eval_steps`` is set (a train_fn reports per epoch).
    """

    declared = TRAIN_FN
    trains_as = "train_fn"

    def __init__(self, config: Any, train_fn: TrainFunction, *, check_method: bool = True) -> None:
        if config.training.eval_steps is not None:
            raise ConfigError(
                "training.eval_steps looks within an epoch, which hptune's own loop and the "
                "Trainer backends do; a train_fn reports per epoch only. Remove "
                "training.eval_steps, or train with backend: accelerate, trainer or sft"
            )
        super().__init__(config, check_method=check_method)
        self.train_fn = train_fn

    def train_job(self, job: RunJob) -> RunResult:
        """Call ``train_fn`` for one run; see `RunnerBase.train`."""
        hp, seed = job.hp, job.seed
        if self._initial_eval_loss is None:  # where the loss starts, for the watch and diagnosis
            self._measure_initial(hp)
        result = RunResult(seed=seed, initial_eval_loss=self._initial_eval_loss)
        run = TrialRun(self, hp, seed, evaluate_test=job.evaluate_test, run_name=job.run_name)
        run._report = self._reporter(run, result, job.on_epoch)
        with tempfile.TemporaryDirectory(prefix="hptune-train-fn-") as scratch:
            run.output_dir = scratch
            try:
                returned = self.train_fn(run)
            finally:
                run.release()
        if not result.epochs and returned is not None:
            if self.config.objective.is_text_metric:
                raise ConfigError(
                    "train_fn: with a text metric, report each epoch with "
                    "run.report(epoch, model=model) (or eval_loss= and score=) instead of "
                    "returning a value"
                )
            # One value, for the last epoch: nothing to prune or stop early on.
            run.report(hp.epochs, eval_loss=float(returned))
        if not result.epochs:
            raise ConfigError(
                "train_fn: it reported no epoch and returned no value; call "
                "run.report(epoch, model=model) after each epoch (or return the validation "
                "loss)"
            )
        return result

    def _measure_initial(self, hp: HParams) -> None:
        """The validation loss before training, measured where the user's run will train."""
        model = self.load_run_model()
        if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
            model.to("cuda")
        device = next(model.parameters()).device
        self.initial_loss(model, self.eval_loaders(hp, device, test=False))
        self.release_run_model(model)
        del model

    def _reporter(
        self, run: TrialRun, result: RunResult, on_epoch: EpochCallback | None
    ) -> Callable[[EpochMetrics], bool]:
        """What ``run.report`` hands each epoch to: it closes the epoch as every backend does,
        counting training time only, and False once the run has stopped."""
        going = [True]
        started, measuring = time.perf_counter(), [0.0]
        lengths = self.data.train_lengths

        def report(metrics: EpochMetrics) -> bool:
            if not going[0]:
                return False  # already stopped: later reports are ignored
            began = time.perf_counter()
            # training time only: neither hptune's validation nor this bookkeeping
            result.seconds = began - started - measuring[0] - run.measuring_seconds
            # The user's loop trained on the training split once per epoch (its throughput
            # is what the batch phase weighs among equivalent batches).
            result.train_examples = len(lengths) * metrics.epoch
            result.train_tokens = sum(lengths) * metrics.epoch
            going[0] = self.close_epoch(None, metrics, result, on_epoch)
            measuring[0] += time.perf_counter() - began
            return going[0]

        return report
