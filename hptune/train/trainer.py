"""The ``trainer`` and ``sft`` backends: each seed of each trial is a real
``transformers.Trainer`` (or TRL ``SFTTrainer``), built from the trial's configuration or by
the user's ``trainer_factory``, with hptune's callback for the per-epoch measurement,
pruning, early stopping, checkpoints, and a divergence watch on every batch's loss.
"""

from __future__ import annotations

import gc
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from hptune._signals import raise_if_interrupted
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.train._divergence import DivergenceWatch
from hptune.train._looks import EpochLooks
from hptune.train._results import EpochCallback, RunResult
from hptune.train.arguments import sft_arguments
from hptune.train.checkpoints import drop_training_state
from hptune.train.runner import RunnerBase
from hptune.train.trl_data import sft_dataset, sft_tokenizer
from hptune.train.user import TrialRun

__all__ = ["TrainerFactory", "TrainerRunner"]

#: Builds the user's own ``Trainer`` for one seed of one trial.
TrainerFactory = Callable[[TrialRun], Any]


class TrainerRunner(RunnerBase):
    """Trains each run with a ``transformers.Trainer`` (``training.backend: trainer``), a TRL
    ``SFTTrainer`` (``sft``), or the one the user's ``trainer_factory`` returns.

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

    def __init__(
        self,
        config: Any,
        trainer_factory: TrainerFactory | None = None,
        *,
        check_method: bool = True,
    ) -> None:
        super().__init__(config, check_method=check_method)
        self.trainer_factory = trainer_factory
        self.backend = "factory" if trainer_factory is not None else config.training.backend
        if trainer_factory is not None:
            self.trains_as = "trainer_factory"

    def train(
        self,
        hp: HParams,
        seed: int,
        on_epoch: EpochCallback | None = None,
        *,
        evaluate_test: bool = False,
        run_name: str | None = None,
        resume_from: Path | None = None,
    ) -> RunResult:
        """Train ``hp`` with ``seed`` in a Trainer; see `RunnerBase.train`."""
        import torch
        from transformers import set_seed

        checkpoint_dir = self.begin_run(hp, seed, evaluate_test=evaluate_test, run_name=run_name)
        result = RunResult(seed=seed)
        run = TrialRun(self, hp, seed, evaluate_test=evaluate_test, run_name=run_name)
        with tempfile.TemporaryDirectory(prefix="hptune-trainer-") as scratch:
            run.output_dir = scratch
            set_seed(seed)
            try:
                self._train(run, result, on_epoch, checkpoint_dir)
            finally:
                run.release()  # the models it handed out (a LoRA base drops the adapter)
                gc.collect()  # the Trainer and its optimizer state, even with the user's model
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        if checkpoint_dir is not None and checkpoint_dir.is_dir():
            drop_training_state(checkpoint_dir)
        return result

    def _train(
        self,
        run: TrialRun,
        result: RunResult,
        on_epoch: EpochCallback | None,
        checkpoint_dir: Path | None,
    ) -> None:
        trainer = self._build(run)
        loaders = self.eval_loaders(run.hparams, trainer.args.device, test=run.evaluate_test)
        result.initial_eval_loss = self.initial_loss(trainer.model, loaders)
        watch = _EpochWatch(self, run.hparams, result, on_epoch, loaders, checkpoint_dir)
        unwatch = watch.watch_batches(trainer)
        trainer.add_callback(watch)
        try:
            trainer.train()
        except _Diverged:
            pass  # result.diverged and where are set; the run ends here
        finally:
            result.seconds = watch.training_seconds()
            result.processes = trainer.args.world_size
            trainer.remove_callback(watch)
            unwatch()  # the hook and the wrapper hold the watch: no cycle left behind
            trainer.accelerator.free_memory()

    def _build(self, run: TrialRun) -> Any:
        if self.trainer_factory is None:
            from transformers import PrinterCallback

            trainer = self.build_trainer(run)
            trainer.remove_callback(PrinterCallback)  # hptune prints its own progress
            return trainer
        trainer = self.trainer_factory(run)
        _check_tuned_values(trainer, run)
        return trainer

    def build_trainer(self, run: TrialRun) -> Any:
        """The Trainer (``trainer``) or SFTTrainer (``sft``) of one run, from its configuration.

        Args:
            run: The trial's hyperparameters and seed.

        Returns:
            A ``Trainer`` on hptune's tokenized training split, not yet trained.
        """
        model = run.model()
        if self.config.training.backend == "sft":
            from datasets.utils.logging import disable_progress_bar, enable_progress_bar
            from trl import SFTConfig, SFTTrainer

            keys = {**run.training_keys(), **sft_arguments(self.config, self.data.format),
                    **dict(run.hparams.args)}  # a phase's searched values win  # fmt: skip
            records = self.data.train_records
            if records is None:
                # hptune's own tokenization: the tokens it trains on (its labels, every
                # assistant turn of a conversation too) go in as completions.
                keys.update(completion_only_loss=True, assistant_only_loss=False)
            args = SFTConfig(**keys)
            disable_progress_bar()  # its preprocessing, once per run: hptune prints progress
            try:
                train = sft_dataset(self.data.train, records)
                tokenizer = sft_tokenizer(self.tokenizer, self.data.trl_chat_template)
                return SFTTrainer(model=model, args=args, train_dataset=train,
                                  processing_class=tokenizer,
                                  optimizers=self._optimizers(model, run))  # fmt: skip
            finally:
                enable_progress_bar()
        from transformers import Trainer, TrainingArguments

        return Trainer(
            model=model,
            args=TrainingArguments(**run.training_keys()),
            train_dataset=self.data.train,
            data_collator=self.collator(),
            processing_class=self.tokenizer,
            optimizers=self._optimizers(model, run),
        )

    def _optimizers(self, model: Any, run: TrialRun) -> tuple[Any, None]:
        """``(optimizer, None)`` for the Trainer: the LoRA+ optimizer when configured (the
        Trainer then builds the scheduler on it), else none (the Trainer builds its own)."""
        ratio = self.config.method.loraplus_lr_ratio
        if not ratio:
            return (None, None)
        from hptune.train.loop import build_adamw

        training = self.config.training
        args = {**training.args, **dict(run.hparams.args)}
        return (build_adamw(model, run.hparams, training.optim, args, ratio), None)


class _Diverged(Exception):
    """Raised from inside the Trainer's step when the divergence watch ends the run."""


class _EpochWatch(TrainerCallback):
    """hptune's Trainer callback: the per-epoch measurement and stop, and the batch watch."""

    def __init__(
        self,
        runner: RunnerBase,
        hp: HParams,
        result: RunResult,
        on_epoch: EpochCallback | None,
        loaders: Any,
        checkpoint_dir: Path | None,
    ) -> None:
        self.runner, self.hp, self.result, self.on_epoch = runner, hp, result, on_epoch
        self.loaders, self.checkpoint_dir = loaders, checkpoint_dir
        self.watch = DivergenceWatch(start=result.initial_eval_loss)
        #: TRL packs the examples into rows (``training.args.packing``, or a searched value):
        #: throughput and the budget count the examples, not the rows.
        self.packed = bool({**runner.config.training.args, **dict(hp.args)}.get("packing"))
        self.log: Any = None
        self._trainer: Any = None
        self._batch: dict[str, Any] | None = None  # the training batch the model just saw
        self.epoch, self.steps, self.batches, self.loss_sum = 0, 0, 0, 0.0
        self.started = time.perf_counter()
        self.evaluating = 0.0
        # none until the Trainer says how long an epoch is (on_train_begin)
        self.looks = EpochLooks(1, None, on_epoch, lambda model: math.nan)

    def training_seconds(self) -> float:
        return time.perf_counter() - self.started - self.evaluating

    def watch_batches(self, trainer: Any) -> Callable[[], None]:
        """Watch each training batch's loss through public hooks; returns their removal.

        A forward hook on the model (PyTorch's ``register_forward_hook``) sees each batch's
        inputs and, on the Trainer's own path, the loss the model returns; a
        ``compute_loss_func`` that your ``trainer_factory`` set still computes the loss (the
        Trainer hands it the model's outputs), and the watch reads what it returned. No
        method of the Trainer is replaced.
        """
        self.log = trainer.log  # the epoch's measurement goes to the run's trackers too
        self._trainer = trainer
        hook = trainer.model.register_forward_hook(self._forward, with_kwargs=True)
        user_loss = trainer.compute_loss_func
        if user_loss is None:
            return hook.remove

        def loss_of_yours(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
            loss = user_loss(outputs, labels, num_items_in_batch=num_items_in_batch)
            if self._batch is not None:  # a training batch (not your own evaluation)
                self._watch(loss, labels, num_items_in_batch)
            return loss

        trainer.compute_loss_func = loss_of_yours

        def remove() -> None:
            hook.remove()
            trainer.compute_loss_func = user_loss

        return remove

    def _forward(self, model: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        """After each forward: note a training batch; on the Trainer's own path, watch its
        loss (with a ``compute_loss_func``, the labels went to it instead)."""
        self._batch = kwargs if model.training else None
        if self._batch is None or self._trainer.compute_loss_func is not None:
            return
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        if loss is not None:
            self._watch(loss, kwargs.get("labels"), kwargs.get("num_items_in_batch"))

    def _watch(self, loss: Any, labels: Any, num_items_in_batch: Any) -> None:
        import torch

        trainer, inputs = self._trainer, self._batch or {}
        self._batch = None
        processes = max(trainer.args.world_size, 1)
        loss = loss.detach().float()
        # The Trainer's own rules (Trainer.training_step, compute_loss): how the loss was
        # scaled for the accumulation window (before the Trainer multiplies a token-weighted
        # one by the processes, which this hook does not see).
        token_weighted = num_items_in_batch is not None and (
            trainer.model_accepts_loss_kwargs or trainer.compute_loss_func is not None
        )
        scaled = getattr(trainer, "loss_is_scaled_for_ga", None)
        scaled = token_weighted if scaled is None else scaled
        if scaled and token_weighted and labels is not None:  # the window's token mean share
            targets = (labels[:, 1:] != -100).sum().clamp(min=1)
            own, share = loss * float(num_items_in_batch) / targets, loss
        else:  # the batch's mean, which the Trainer divides by the window's batches
            own = loss
            share = loss / max(trainer.current_gradient_accumulation_steps, 1) / processes
        # Averaged over processes: all see the same value and stop together. The share
        # is summed: the window's mean is the sum of the processes' shares.
        both = torch.stack([own.to(loss.device), share]).reshape(2)
        if processes > 1:
            accelerator = trainer.accelerator
            both = torch.cat([accelerator.reduce(both[:1], "mean"),
                              accelerator.reduce(both[1:], "sum")])  # fmt: skip
        own_value, share_value = (float(v) for v in both)
        self.loss_sum += share_value
        self.batches += 1
        input_ids = inputs["input_ids"]
        positions = inputs.get("position_ids")
        if self.packed and positions is not None:  # a packed row holds several examples:
            examples = int((positions == 0).sum())  # each starts at position 0
        else:
            examples = int(input_ids.shape[0])
        self.result.train_examples += examples * processes
        mask = inputs.get("attention_mask")
        tokens = int(mask.sum()) if mask is not None else input_ids.numel()
        self.result.train_tokens += tokens * processes
        why = self.watch.update(own_value)
        if why is not None:
            self.result.diverged = True
            self.result.diverged_at = f"epoch {self.epoch + 1}, step {self.batches} ({why})"
            raise _Diverged(why)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        raise_if_interrupted()  # a signal stops here, between optimizer steps

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        raise_if_interrupted()  # and between the batches of an accumulation window

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()  # training time starts here, as the Trainer's
        # The Trainer's optimizer steps per epoch (a short last window is a step too).
        batches = len(kwargs["train_dataloader"])
        steps = math.ceil(batches / max(args.gradient_accumulation_steps, 1))
        self.looks = self.runner.epoch_looks(steps, self.on_epoch, self.loaders)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.steps += 1
        began = time.perf_counter()
        going_on = self.looks.after_step(kwargs["model"], self.result, self.epoch + 1, self.steps)
        self.evaluating += time.perf_counter() - began
        if not going_on:
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.result.stopped_early:  # a look stopped the run within this epoch
            return control
        began = time.perf_counter()
        self.result.seconds = self.training_seconds()
        self.epoch += 1
        model, scheduler = kwargs["model"], kwargs.get("lr_scheduler")
        metrics = self.looks.close(
            self.runner.measure_epoch(
                model,
                self.loaders,
                epoch=self.epoch,
                train_loss=self.loss_sum / max(self.steps, 1),
                learning_rate=scheduler.get_last_lr()[0] if scheduler is not None else math.nan,
            )
        )
        self.loss_sum, self.steps, self.batches = 0.0, 0, 0
        if args.report_to and args.report_to != ["none"] and self.log is not None:
            logged = metrics.logged()
            self.log({f"hptune/{k}": v for k, v in logged.items()})  # as the loop logs them
        going_on = self.runner.close_epoch(
            model, metrics, self.result, self.on_epoch, checkpoint_dir=self.checkpoint_dir
        )
        model.train()
        self.evaluating += time.perf_counter() - began
        if not going_on:
            control.should_training_stop = True
        return control


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
    tuned = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
             "num_train_epochs", "weight_decay", "max_grad_norm", "seed", "data_seed",
             "warmup_steps", "warmup_ratio")  # fmt: skip
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
