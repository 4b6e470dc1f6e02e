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
from pathlib import Path
from typing import Any

from hptune._signals import raise_if_interrupted
from hptune.hparams import HParams
from hptune.train._divergence import DivergenceWatch
from hptune.train._looks import looks_per_epoch
from hptune.train._results import EpochCallback, EpochMetrics, RunResult
from hptune.train._run_state import _resume, _RunState
from hptune.train.arguments import default_optimizer, mixed_precision, scheduler_kwargs
from hptune.train.checkpoints import drop_training_state
from hptune.train.runner import RunnerBase

__all__ = [
    "DivergenceWatch",
    "EpochMetrics",
    "RunResult",
    "Runner",
    "accepts_loss_kwargs",
    "decay_parameter_names",
]


class Runner(RunnerBase):
    """hptune's built-in backend (``training.backend: accelerate``): an Accelerate loop.

    Args:
        config: The run's configuration.

    Raises:
        DataError: A data file is missing, empty or malformed.
        ModelError: The model or its tokenizer cannot be loaded.
        UnsupportedError: The method cannot run on this machine.
    """

    backend = "accelerate"
    stacks_seeds = True  # hptune.train.together
    #: Whether the model takes ``num_items_in_batch`` (set per run; the Trainer's test).
    _loss_kwargs = True

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
        """Train ``hp`` with ``seed``; see `RunnerBase.train`.

        ``resume_from`` is the checkpoint directory of an interrupted run of the same
        configuration and seed: training goes on after its last epoch checkpoint (weights,
        optimizer, scheduler and random state restored, so the run ends as an uninterrupted
        one would), its earlier epochs replayed through ``on_epoch``.
        """
        import torch
        from accelerate import Accelerator
        from accelerate.data_loader import SeedableRandomSampler
        from accelerate.utils import set_seed
        from torch.utils.data import DataLoader
        from transformers import get_scheduler

        checkpoint_dir = self.begin_run(hp, seed, evaluate_test=evaluate_test, run_name=run_name)
        training = self.config.training
        output = Path(self.config.output_dir)
        trackers = list(training.report_to) if run_name is not None else []
        # Accumulation is done here, as the Trainer does it (one window of batches, one loss
        # over its tokens), so Accelerate is told there is none.
        accelerator = Accelerator(
            mixed_precision=mixed_precision(),
            cpu=not torch.cuda.is_available(),
            log_with=trackers or None,
            project_dir=str(output / "logs") if trackers else None,
        )
        # Accelerate's GradientState is shared by the process: a Trainer run stopped inside an
        # accumulation window (diverged, interrupted) leaves it "not syncing", and the
        # prepared optimizer would then skip every step. This loop accumulates itself.
        accelerator.gradient_state.sync_gradients = True
        if trackers:
            hparams = {k: v for k, v in hp.to_dict().items() if v is not None}
            accelerator.init_trackers(f"{run_name}/seed-{seed}", config=hparams)
        set_seed(seed)
        model = self.load_run_model(hp)
        set_seed(seed)  # as the Trainer does once it has the model: dropout starts from the seed
        # The data order of epoch e is the permutation seeded by seed + e: the sampler the
        # Trainer uses (Accelerate's), so both backends see the same batches.
        sampler = SeedableRandomSampler(self.data.train, data_seed=seed)
        train_loader = DataLoader(self.data.train, batch_size=hp.batch_size, sampler=sampler,
                                  collate_fn=self.collator())  # fmt: skip
        loaders = self.eval_loaders(hp, accelerator.device, test=evaluate_test)
        optimizer = build_adamw(model, hp, training.optim, {**training.args, **dict(hp.args)},
                           self.config.method.loraplus_lr_ratio)  # fmt: skip
        model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
        # As the Trainer: the steps of this process's shard of the data, and a scheduler that
        # steps once per update (not prepared, which would step it once per process).
        steps = math.ceil(len(train_loader) / hp.gradient_accumulation_steps) * hp.epochs
        scheduler = get_scheduler(
            hp.scheduler,
            optimizer=optimizer,
            # TrainingArguments.get_warmup_steps: the ceiling, not the rounding.
            num_warmup_steps=math.ceil(hp.warmup_ratio * steps),
            num_training_steps=steps,
            scheduler_specific_kwargs=scheduler_kwargs(
                hp.scheduler, {**training.args, **dict(hp.args)}.get("lr_scheduler_kwargs")
            ),
        )
        self._loss_kwargs = accepts_loss_kwargs(accelerator.unwrap_model(model))
        result = RunResult(seed=seed, processes=accelerator.num_processes)
        run = _RunState(model, optimizer, scheduler, DivergenceWatch())
        try:
            result.initial_eval_loss = self.initial_loss(accelerator.unwrap_model(model), loaders)
            run.watch = DivergenceWatch(start=result.initial_eval_loss)
            resumed = None
            if resume_from is not None and accelerator.num_processes == 1:
                per_epoch = looks_per_epoch(steps // hp.epochs, training.eval_steps)
                resumed = _resume(accelerator, run, result, resume_from, on_epoch, per_epoch)
            if resumed is None or (resumed < hp.epochs and not result.stopped_early):
                first_epoch = (resumed or 0) + 1
                self._epochs(accelerator, run, train_loader, sampler, loaders, hp, result,
                             on_epoch, checkpoint_dir, first_epoch=first_epoch)  # fmt: skip
            if checkpoint_dir is not None and checkpoint_dir.is_dir():
                drop_training_state(checkpoint_dir)  # finished: it will never be resumed
        finally:
            if trackers:
                accelerator.end_training()
            # Free the run before the next one: each trial may have another footprint.
            unwrapped = accelerator.unwrap_model(model)
            accelerator.free_memory()
            del model, optimizer, scheduler, run
            self.release_run_model(unwrapped)
        return result

    def _epochs(
        self,
        accelerator: Any,
        run: _RunState,
        train_loader: Any,
        sampler: Any,
        loaders: Any,
        hp: HParams,
        result: RunResult,
        on_epoch: EpochCallback | None,
        checkpoint_dir: Path | None = None,
        *,
        first_epoch: int = 1,
    ) -> None:
        import torch

        model, optimizer, scheduler, watch = run.model, run.optimizer, run.scheduler, run.watch
        processes = accelerator.num_processes
        model.train()
        start = time.perf_counter() - result.seconds  # a resumed run goes on counting
        steps_per_epoch = math.ceil(len(train_loader) / hp.gradient_accumulation_steps)
        looks = self.epoch_looks(steps_per_epoch, on_epoch, loaders)
        for epoch in range(first_epoch, hp.epochs + 1):
            # (the prepared loader passes it on to the sampler, and counts from it)
            (train_loader if hasattr(train_loader, "set_epoch") else sampler).set_epoch(epoch - 1)
            loss_sum, n_steps, micro = 0.0, 0, 0
            for window in _windows(train_loader, hp.gradient_accumulation_steps):
                # The step's loss is the mean over every target token of the window (on every
                # process): each batch's token losses are summed, then divided by that count.
                n_items = sum(_targets(batch) for batch in window)
                if processes > 1:
                    n_items = accelerator.reduce(n_items, "sum")
                # float64, as the sum of Python floats it replaces: the same values
                step_loss = torch.zeros((), dtype=torch.float64, device=accelerator.device)
                for index, batch in enumerate(window):
                    raise_if_interrupted()  # a signal stops here, between batches
                    micro += 1
                    last = index == len(window) - 1
                    # Gradients are synchronised once per window, on its last batch.
                    sync = contextlib.nullcontext() if last else accelerator.no_sync(model)
                    with sync:
                        if self._loss_kwargs:  # token sum / the window's tokens
                            batch = {**batch, "num_items_in_batch": n_items}
                            loss = self.step_loss(model, batch, epoch)
                            own = loss.detach().float() * n_items / _targets(batch).clamp(min=1)
                        else:  # a model without loss kwargs: its batch mean, as the Trainer
                            loss = self.step_loss(model, batch, epoch) / len(window)
                            own = loss.detach().float() * len(window)
                        # The watch sees each batch's own mean token loss, averaged over
                        # processes: all see the same value and stop together.
                        why = watch.update(accelerator.reduce(own, "mean").item())
                        if why is not None:
                            result.diverged = True
                            result.diverged_at = f"epoch {epoch}, step {micro} ({why})"
                            result.seconds = time.perf_counter() - start
                            return
                        # Process gradients are averaged: a loss over all processes' tokens
                        # is scaled back up; a batch mean is not (the Trainer's rule).
                        accelerator.backward(loss * processes if self._loss_kwargs else loss)
                    # this process's share of the window's mean: summed over processes below
                    share = loss.detach().double()
                    step_loss += share if self._loss_kwargs else share / processes
                    result.train_examples += int(batch["input_ids"].shape[0]) * processes
                    result.train_tokens += int(batch["attention_mask"].sum()) * processes
                if hp.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
                optimizer.step()
                if not accelerator.optimizer_step_was_skipped:  # fp16's skipped steps
                    scheduler.step()
                optimizer.zero_grad()
                # This process's share of the window's mean: the whole mean is their sum.
                loss_sum += float(accelerator.reduce(step_loss, "sum") if processes > 1
                                  else step_loss)  # fmt: skip
                n_steps += 1
                began = time.perf_counter()
                going_on = looks.after_step(accelerator.unwrap_model(model), result, epoch, n_steps)
                start += time.perf_counter() - began  # a look is not training time
                if not going_on:
                    result.seconds = time.perf_counter() - start
                    return
            result.seconds = time.perf_counter() - start
            unwrapped = accelerator.unwrap_model(model)
            metrics = looks.close(
                self.measure_epoch(
                    unwrapped,
                    loaders,
                    epoch=epoch,
                    train_loss=loss_sum / max(n_steps, 1),
                    learning_rate=scheduler.get_last_lr()[0],
                )
            )
            logged = metrics.logged()
            accelerator.log(logged, step=epoch)
            going_on = self.close_epoch(
                unwrapped,
                metrics,
                result,
                on_epoch,
                checkpoint_dir=checkpoint_dir,
                training_state=lambda: run.training_state(result),
            )
            if not going_on:
                return
            model.train()
            start = time.perf_counter() - result.seconds  # evaluation is not training time

    def step_loss(self, model: Any, batch: dict[str, Any], epoch: int) -> Any:
        """The training loss of one batch (a seam for tests that inject faults).

        ``batch`` carries ``num_items_in_batch``, the target tokens of the whole accumulation
        window: the model sums the batch's token losses and divides by it (transformers'
        causal-LM loss), so the window's losses add up to its mean token loss.
        """
        return model(**batch).loss


def decay_parameter_names(model: Any) -> list[str]:
    """The parameters weight decay applies to: not biases, nor normalisation weights."""
    from transformers import Trainer

    # transformers' own rule, so both backends decay the same parameters; it reads nothing
    # of the Trainer instance, so it is called without one.
    return list(Trainer.get_decay_parameter_names(None, model))  # type: ignore[arg-type]


def accepts_loss_kwargs(model: Any) -> bool:
    """Whether the model's forward takes ``num_items_in_batch`` (the Trainer's own test, on
    the model under a peft adapter)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(base, "accepts_loss_kwargs"):
        return bool(base.accepts_loss_kwargs)
    parameters = inspect.signature(base.forward).parameters.values()
    return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters)


def build_adamw(
    model: Any,
    hp: HParams,
    optim: str | None,
    args: dict[str, Any],
    loraplus_lr_ratio: float | None = None,
) -> Any:
    """AdamW as the Trainer builds it for ``optim`` (``adamw_torch`` or ``_fused``), with
    ``training.args``' betas and epsilon (the Trainer's defaults otherwise); with
    ``loraplus_lr_ratio``, peft's LoRA+ groups (B matrices at that many times the rate)."""
    import torch

    options = {
        "betas": (args.get("adam_beta1", 0.9), args.get("adam_beta2", 0.999)),
        "eps": args.get("adam_epsilon", 1e-8),
        "fused": (optim or default_optimizer()) == "adamw_torch_fused",
    }
    if loraplus_lr_ratio:
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(
            model, torch.optim.AdamW, lr=hp.learning_rate, loraplus_lr_ratio=loraplus_lr_ratio,
            loraplus_weight_decay=hp.weight_decay, **options,
        )  # fmt: skip

    decay = set(decay_parameter_names(model))
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if n in decay], "weight_decay": hp.weight_decay},
        {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0},
    ]
    # The Trainer's default optimizer ("adamw_torch_fused" on torch >= 2.8).
    return torch.optim.AdamW(groups, lr=hp.learning_rate, **options)


def _windows(loader: Any, size: int) -> Any:
    """The loader's batches, ``size`` at a time (the last window of an epoch may be short)."""
    window: list[dict[str, Any]] = []
    for batch in loader:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def _targets(batch: dict[str, Any]) -> Any:
    """How many tokens of ``batch`` are predicted (labels shift by one)."""
    return (batch["labels"][:, 1:] != -100).sum()
