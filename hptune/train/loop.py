"""hptune's own training loop, on Accelerate: one configuration, one seed, per-epoch metrics.

It trains as ``transformers.Trainer`` does (checked by ``tests/train/test_backend_parity.py``):
the loss of an optimizer step is the mean over every target token of its accumulation window,
biases and normalisation weights are not decayed, warmup is ``ceil(ratio x steps)``, the data
order of epoch ``e`` is the permutation seeded by ``seed + e`` and the dropout's random state
restarts from the seed once the model is built. So ``batch 4 x 8`` and ``batch 16 x 2`` take
the same steps, and the values tuned here are the ones a ``Trainer`` trains with.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hptune._lazy import accelerate_data_loader, accelerate_utils, torch, torch_data
from hptune._signals import raise_if_interrupted
from hptune.config._backends import ACCELERATE
from hptune.train._divergence import DivergenceWatch
from hptune.train._looks import EpochLooks, looks_per_epoch
from hptune.train._results import EpochMetrics, RunJob, RunResult
from hptune.train._run_state import _resume, _RunState
from hptune.train.arguments import run_args
from hptune.train.checkpoints import drop_training_state
from hptune.train.runner import EvalLoaders, RunnerBase
from hptune.train.steps import (
    accepts_loss_kwargs,
    build_adamw,
    build_scheduler,
    make_accelerator,
    targets,
    windows,
)

__all__ = ["DivergenceWatch", "EpochMetrics", "RunResult", "Runner"]


@dataclass
class _Loop:
    """One run of the loop as it trains: its Accelerator, its state, its batches."""

    accelerator: Any
    run: _RunState
    job: RunJob
    result: RunResult
    train_loader: Any
    sampler: Any
    loaders: EvalLoaders
    #: When training time started counting (a look or an evaluation moves it on).
    start: float = 0.0


class Runner(RunnerBase):
    """hptune's built-in backend (``training.backend: accelerate``): an Accelerate loop.

    Args:
        config: The run's configuration.

    Raises:
        DataError: A data file is missing, empty or malformed.
        ModelError: The model or its tokenizer cannot be loaded.
        UnsupportedError: The method cannot run on this machine.
    """

    declared = ACCELERATE  # it trains seeds together too: hptune.train.together
    #: Whether the model takes ``num_items_in_batch`` (set per run; the Trainer's test).
    _loss_kwargs = True

    def train_job(self, job: RunJob) -> RunResult:
        """Train one run; see `RunnerBase.train`.

        ``job.resume_from`` is the checkpoint directory of an interrupted run of the same
        configuration and seed: training goes on after its last epoch checkpoint (weights,
        optimizer, scheduler and random state restored, so the run ends as an uninterrupted
        one would), its earlier epochs replayed through ``on_epoch``.
        """
        hp, seed, training = job.hp, job.seed, self.config.training
        trackers = list(training.report_to) if job.run_name is not None else []
        accelerator = make_accelerator(trackers, Path(self.config.output_dir) / "logs")
        if trackers:
            hparams = {k: v for k, v in hp.to_dict().items() if v is not None}
            accelerator.init_trackers(f"{job.run_name}/seed-{seed}", config=hparams)
        accelerate_utils.set_seed(seed)
        model = self.load_run_model(hp)
        accelerate_utils.set_seed(seed)  # as the Trainer, once it has the model: dropout too
        # The data order of epoch e is the permutation seeded by seed + e: the sampler the
        # Trainer uses (Accelerate's), so both backends see the same batches.
        sampler = accelerate_data_loader.SeedableRandomSampler(self.data.train, data_seed=seed)
        train_loader = torch_data.DataLoader(
            self.data.train, batch_size=hp.batch_size, sampler=sampler, collate_fn=self.collator()
        )
        loaders = self.eval_loaders(hp, accelerator.device, test=job.evaluate_test)
        args = run_args(self.config, hp)
        ratio = self.config.method.loraplus_lr_ratio
        optimizer = build_adamw(model, hp, training.optim, args, ratio)
        model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
        # As the Trainer: the steps of this process's shard of the data.
        scheduler = build_scheduler(optimizer, hp, len(train_loader), args)
        self._loss_kwargs = accepts_loss_kwargs(accelerator.unwrap_model(model))
        result = RunResult(seed=seed, processes=accelerator.num_processes)
        run = _RunState(model, optimizer, scheduler, DivergenceWatch())
        try:
            self._run(_Loop(accelerator, run, job, result, train_loader, sampler, loaders))
        finally:
            if trackers:
                accelerator.end_training()
            # Free the run before the next one: each trial may have another footprint.
            unwrapped = accelerator.unwrap_model(model)
            accelerator.free_memory()
            del model, optimizer, scheduler, run
            self.release_run_model(unwrapped)
        return result

    def _run(self, loop: _Loop) -> None:
        """Measure where the run starts, resume it where a checkpoint says, train the rest."""
        job, result, accelerator = loop.job, loop.result, loop.accelerator
        hp = job.hp
        model = accelerator.unwrap_model(loop.run.model)
        result.initial_eval_loss = self.initial_loss(model, loop.loaders)
        loop.run.watch = DivergenceWatch(start=result.initial_eval_loss)
        resumed = None
        if job.resume_from is not None and accelerator.num_processes == 1:
            steps = math.ceil(len(loop.train_loader) / hp.gradient_accumulation_steps)
            per_epoch = looks_per_epoch(steps, self.config.training.eval_steps)
            resumed = _resume(
                accelerator, loop.run, result, job.resume_from, job.on_epoch, per_epoch
            )
        if resumed is None or (resumed < hp.epochs and not result.stopped_early):
            self._epochs(loop, first_epoch=(resumed or 0) + 1)
        if job.checkpoint_dir is not None and job.checkpoint_dir.is_dir():
            drop_training_state(job.checkpoint_dir)  # finished: it will never be resumed

    def _epochs(self, loop: _Loop, first_epoch: int) -> None:
        hp, result = loop.job.hp, loop.result
        loop.run.model.train()
        loop.start = time.perf_counter() - result.seconds  # a resumed run goes on counting
        steps_per_epoch = math.ceil(len(loop.train_loader) / hp.gradient_accumulation_steps)
        looks = self.epoch_looks(steps_per_epoch, loop.job.on_epoch, loop.loaders)
        for epoch in range(first_epoch, hp.epochs + 1):
            # (the prepared loader passes it on to the sampler, and counts from it)
            loader = loop.train_loader
            (loader if hasattr(loader, "set_epoch") else loop.sampler).set_epoch(epoch - 1)
            train_loss = self._epoch(loop, looks, epoch)
            result.seconds = time.perf_counter() - loop.start
            if train_loss is None or not self._close(loop, looks, epoch, train_loss):
                return
            loop.run.model.train()
            loop.start = time.perf_counter() - result.seconds  # evaluation is not training time

    def _epoch(self, loop: _Loop, looks: EpochLooks, epoch: int) -> float | None:
        """Train one epoch; its mean step loss, or None when the run stopped within it
        (diverged, or a look stopped it)."""
        accelerator, run, hp = loop.accelerator, loop.run, loop.job.hp
        loss_sum, n_steps, micro = 0.0, 0, 0
        for window in windows(loop.train_loader, hp.gradient_accumulation_steps):
            step_loss = self._window(loop, window, epoch, micro)
            if step_loss is None:
                return None
            micro += len(window)
            if hp.max_grad_norm:
                accelerator.clip_grad_norm_(run.model.parameters(), hp.max_grad_norm)
            run.optimizer.step()
            if not accelerator.optimizer_step_was_skipped:  # fp16's skipped steps
                run.scheduler.step()
            run.optimizer.zero_grad()
            # This process's share of the window's mean: the whole mean is their sum.
            processes = accelerator.num_processes
            loss_sum += float(accelerator.reduce(step_loss, "sum") if processes > 1 else step_loss)
            n_steps += 1
            began = time.perf_counter()
            model = accelerator.unwrap_model(run.model)
            going_on = looks.after_step(model, loop.result, epoch, n_steps)
            loop.start += time.perf_counter() - began  # a look is not training time
            if not going_on:
                return None
        return loss_sum / max(n_steps, 1)

    def _window(self, loop: _Loop, window: list[dict[str, Any]], epoch: int, micro: int) -> Any:
        """One accumulation window's forward and backward passes; this process's share of
        the window's mean loss, or None when a batch's loss diverged."""
        accelerator, result, model = loop.accelerator, loop.result, loop.run.model
        processes = accelerator.num_processes
        # The step's loss is the mean over every target token of the window (on every
        # process): each batch's token losses are summed, then divided by that count.
        n_items = sum(targets(batch) for batch in window)
        if processes > 1:
            n_items = accelerator.reduce(n_items, "sum")
        # float64, as the sum of Python floats it replaces: the same values
        step_loss = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        for index, batch in enumerate(window):
            raise_if_interrupted()  # a signal stops here, between batches
            # Gradients are synchronised once per window, on its last batch.
            last = index == len(window) - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(model):
                loss, own = self._batch_loss(model, batch, n_items, len(window), epoch)
                # The watch sees each batch's own mean token loss, averaged over
                # processes: all see the same value and stop together.
                why = loop.run.watch.update(accelerator.reduce(own, "mean").item())
                if why is not None:
                    result.diverged = True
                    result.diverged_at = f"epoch {epoch}, step {micro + index + 1} ({why})"
                    return None
                # Process gradients are averaged: a loss over all processes' tokens
                # is scaled back up; a batch mean is not (the Trainer's rule).
                accelerator.backward(loss * processes if self._loss_kwargs else loss)
            # this process's share of the window's mean: summed over processes by the caller
            share = loss.detach().double()
            step_loss += share if self._loss_kwargs else share / processes
            result.train_examples += int(batch["input_ids"].shape[0]) * processes
            result.train_tokens += int(batch["attention_mask"].sum()) * processes
        return step_loss

    def _batch_loss(
        self, model: Any, batch: dict[str, Any], n_items: Any, window: int, epoch: int
    ) -> tuple[Any, Any]:
        """A batch's loss to step on, and its own mean token loss for the watch."""
        if self._loss_kwargs:  # token sum / the window's tokens
            batch = {**batch, "num_items_in_batch": n_items}
            loss = self.step_loss(model, batch, epoch)
            return loss, loss.detach().float() * n_items / targets(batch).clamp(min=1)
        # a model without loss kwargs: its batch mean, as the Trainer
        loss = self.step_loss(model, batch, epoch) / window
        return loss, loss.detach().float() * window

    def _close(self, loop: _Loop, looks: EpochLooks, epoch: int, train_loss: float) -> bool:
        """The epoch measured, logged, checkpointed and reported; whether the run goes on."""
        accelerator, run = loop.accelerator, loop.run
        unwrapped = accelerator.unwrap_model(run.model)
        learning_rate = run.scheduler.get_last_lr()[0]
        measured = self.measure_epoch(
            unwrapped, loop.loaders, epoch=epoch, train_loss=train_loss, learning_rate=learning_rate
        )
        metrics = looks.close(measured)
        accelerator.log(metrics.logged(), step=epoch)
        return self.close_epoch(
            unwrapped,
            metrics,
            loop.result,
            loop.job.on_epoch,
            checkpoint_dir=loop.job.checkpoint_dir,
            training_state=lambda: run.training_state(loop.result),
        )

    def step_loss(self, model: Any, batch: dict[str, Any], epoch: int) -> Any:
        """The training loss of one batch (a seam for tests that inject faults).

        ``batch`` carries ``num_items_in_batch``, the target tokens of the whole accumulation
        window: the model sums the batch's token losses and divides by it (transformers'
        causal-LM loss), so the window's losses add up to its mean token loss.
        """
        return model(**batch).loss
