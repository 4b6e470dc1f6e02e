"""hptune's callback in every Trainer it trains (the ``trainer`` and ``sft`` backends, and a
user's ``trainer_factory``): the per-epoch measurement, pruning, early stopping,
checkpoints, and a divergence watch on every batch's loss.

It subclasses transformers' ``TrainerCallback``, so importing it imports transformers:
`hptune.train.trainer` loads it when a Trainer first trains.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from hptune._lazy import torch
from hptune._signals import raise_if_interrupted
from hptune.hparams import HParams
from hptune.train._divergence import DivergenceWatch
from hptune.train._looks import EpochLooks
from hptune.train._results import EpochCallback, RunResult
from hptune.train.arguments import run_args
from hptune.train.runner import RunnerBase

__all__ = ["Diverged", "EpochWatch"]


class Diverged(Exception):
    """Raised from inside the Trainer's step when the divergence watch ends the run."""


class EpochWatch(TrainerCallback):
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
        self.packed = bool(run_args(runner.config, hp).get("packing"))
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
            both = torch.cat(
                [accelerator.reduce(both[:1], "mean"), accelerator.reduce(both[1:], "sum")]
            )
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
            raise Diverged(why)

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
