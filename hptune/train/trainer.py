"""The ``trainer`` backend: each seed of each trial is a real ``transformers.Trainer``, built
from the trial's configuration or by the user's ``trainer_factory``, with hptune's callback
(`hptune.train._epoch_watch`) for the per-epoch measurement, pruning, early stopping,
checkpoints, and a divergence watch on every batch's loss. TRL's ``SFTTrainer`` is the same
with its own build (`hptune.train.sft`).
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hptune._lazy import LazyImport, torch, transformers
from hptune.config import TuneConfig
from hptune.config._backends import TRAINER
from hptune.exceptions import ConfigError
from hptune.train._results import EpochCallback, RunJob, RunResult
from hptune.train.arguments import run_args
from hptune.train.checkpoints import drop_training_state
from hptune.train.runner import RunnerBase
from hptune.train.steps import build_adamw
from hptune.train.user import TrialRun

if TYPE_CHECKING:
    from hptune.train import _epoch_watch
else:
    # It subclasses transformers' TrainerCallback, so importing it imports transformers,
    # which naming this backend (hptune.train.make_runner) must not.
    _epoch_watch = LazyImport("hptune.train._epoch_watch")

__all__ = ["TrainerFactory", "TrainerRunner"]

#: Builds the user's own ``Trainer`` for one seed of one trial.
TrainerFactory = Callable[[TrialRun], Any]


class TrainerRunner(RunnerBase):
    """Trains each run with a ``transformers.Trainer`` (``training.backend: trainer``), or the
    one the user's ``trainer_factory`` returns.

    Validation is measured by hptune after every epoch, as for the built-in loop, so the
    backends are scored alike. An interrupted run starts its seed again (the Trainer's own
    checkpoints are not hptune's); its finished trials and phases are kept as always.

    Args:
        config: The run's configuration.
        trainer_factory: Builds the user's ``Trainer`` from a `TrialRun`; it must
            train with ``run.training_arguments()`` (hptune checks the tuned values).

    Raises:
        DataError: A data file is missing, empty or malformed.
        ModelError: The model or its tokenizer cannot be loaded.
        UnsupportedError: The method cannot run on this machine.
    """

    declared = TRAINER

    def __init__(
        self,
        config: TuneConfig,
        trainer_factory: TrainerFactory | None = None,
        *,
        check_method: bool = True,
    ) -> None:
        super().__init__(config, check_method=check_method)
        self.trainer_factory = trainer_factory
        if trainer_factory is not None:
            self.backend = "factory"
            self.trains_as = "trainer_factory"

    def train_job(self, job: RunJob) -> RunResult:
        """Train one run in a Trainer; see `RunnerBase.train`."""
        result = RunResult(seed=job.seed)
        hp, seed = job.hp, job.seed
        run = TrialRun(self, hp, seed, evaluate_test=job.evaluate_test, run_name=job.run_name)
        with tempfile.TemporaryDirectory(prefix="hptune-trainer-") as scratch:
            run.output_dir = scratch
            transformers.set_seed(seed)
            try:
                self._train(run, result, job)
            finally:
                run.release()  # the models it handed out (a LoRA base drops the adapter)
                gc.collect()  # the Trainer and its optimizer state, even with the user's model
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        if job.checkpoint_dir is not None and job.checkpoint_dir.is_dir():
            drop_training_state(job.checkpoint_dir)
        return result

    def _train(self, run: TrialRun, result: RunResult, job: RunJob) -> None:
        trainer = self._build(run)
        loaders = self.eval_loaders(run.hparams, trainer.args.device, test=run.evaluate_test)
        result.initial_eval_loss = self.initial_loss(trainer.model, loaders)
        on_epoch: EpochCallback | None = job.on_epoch
        watch = _epoch_watch.EpochWatch(
            self, run.hparams, result, on_epoch, loaders, job.checkpoint_dir
        )
        unwatch = watch.watch_batches(trainer)
        trainer.add_callback(watch)
        try:
            trainer.train()
        except _epoch_watch.Diverged:
            pass  # result.diverged and where are set; the run ends here
        finally:
            result.seconds = watch.training_seconds()
            result.processes = trainer.args.world_size
            trainer.remove_callback(watch)
            unwatch()  # the hook and the wrapper hold the watch: no cycle left behind
            trainer.accelerator.free_memory()

    def _build(self, run: TrialRun) -> Any:
        if self.trainer_factory is None:
            trainer = self.build_trainer(run)
            trainer.remove_callback(transformers.PrinterCallback)  # hptune prints progress
            return trainer
        trainer = self.trainer_factory(run)
        _check_tuned_values(trainer, run)
        return trainer

    def build_trainer(self, run: TrialRun) -> Any:
        """The Trainer of one run, from its configuration.

        Args:
            run: The trial's hyperparameters and seed.

        Returns:
            A ``Trainer`` on hptune's tokenized training split, not yet trained.
        """
        model = run.model()
        return transformers.Trainer(
            model=model,
            args=transformers.TrainingArguments(**run.training_keys()),
            train_dataset=self.data.train,
            data_collator=self.collator(),
            processing_class=self.tokenizer,
            optimizers=self.optimizers(model, run),
        )

    def optimizers(self, model: Any, run: TrialRun) -> tuple[Any, None]:
        """``(optimizer, None)`` for the Trainer: the LoRA+ optimizer when configured (the
        Trainer then builds the scheduler on it), else none (the Trainer builds its own)."""
        ratio = self.config.method.loraplus_lr_ratio
        if not ratio:
            return (None, None)
        args = run_args(self.config, run.hparams)
        return (build_adamw(model, run.hparams, self.config.training.optim, args, ratio), None)


def _check_tuned_values(trainer: Any, run: TrialRun) -> None:
    """Refuse a user's Trainer that would not train the trial's values."""
    args = getattr(trainer, "args", None)
    if args is None or not callable(getattr(trainer, "train", None)):
        raise ConfigError(
            "trainer_factory: it must return a transformers Trainer (with .args and .train()),"
            f" not {type(trainer).__name__}; build one with run.training_arguments(...)"
        )
    wanted = run.training_keys()
    # what is tuned, and what pairs the seeds (the seed, the data order, the optimizer)
    tuned = (
        "learning_rate",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "num_train_epochs",
        "weight_decay",
        "max_grad_norm",
        "seed",
        "data_seed",
        "warmup_steps",
        "warmup_ratio",
    )
    wrong = [
        f"{key}={getattr(args, key)!r} (the trial's: {wanted[key]!r})"
        for key in tuned
        if key in wanted and getattr(args, key, None) != wanted[key]
    ]
    for key in ("lr_scheduler_type", "optim"):
        value = getattr(args, key)
        value = str(getattr(value, "value", value))
        if value != wanted[key]:
            wrong.append(f"{key}={value!r} (the trial's: {wanted[key]!r})")
    if wrong:
        raise ConfigError(
            "trainer_factory: the Trainer it returned would not train the trial's "
            f"hyperparameters: {'; '.join(wrong)}. Build its arguments with "
            "run.training_arguments(**your_other_keys), which carries the values being "
            "tuned, and do not override them."
        )
