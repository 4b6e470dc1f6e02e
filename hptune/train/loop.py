"""One training run on Accelerate: a configuration, a seed, per-epoch validation metrics."""

from __future__ import annotations

import gc
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hptune._signals import raise_if_interrupted
from hptune.config import TuneConfig
from hptune.hparams import HParams
from hptune.train._divergence import DivergenceWatch
from hptune.train._parallel import broadcast
from hptune.train._results import EpochCallback, EpochMetrics, RunResult
from hptune.train._run_state import _resume, _RunState
from hptune.train.checkpoints import (
    drop_training_state,
    remove_leftovers,
    retain_best_and_last,
    save_checkpoint,
)
from hptune.train.data import PreparedData, prepare_data
from hptune.train.metrics import evaluate_loss, generate_answers, resolve_metric, score_answers
from hptune.train.model import (
    add_adapter,
    check_method_supported,
    load_base_model,
    load_model,
    load_tokenizer,
)

__all__ = ["DivergenceWatch", "EpochMetrics", "RunResult", "Runner"]


class Runner:
    """Trains configurations of one :class:`TuneConfig`; data and tokenizer load once."""

    def __init__(self, config: TuneConfig) -> None:
        self.config = config
        #: Set on process 0 of a data-parallel launch: it tells the others what to train.
        self.leader = False
        #: A LoRA run's frozen base model, kept across runs and seeds: each run adds a fresh
        #: adapter (seeded) and removes it after, so the base never changes and is loaded once.
        self._base: Any = None
        self._initial_eval_loss: float | None = None
        check_method_supported(config.method)
        self.tokenizer = load_tokenizer(config.model)
        objective = config.objective
        self.data: PreparedData = prepare_data(
            config.data,
            self.tokenizer,
            max_train_examples=config.training.max_train_examples,
            eval_samples=objective.eval_samples,
        )
        #: Scores generated answers; ``None`` when the metric is the validation loss.
        self.text_metric = (
            resolve_metric(objective.metric, objective.search_dir)
            if objective.is_text_metric
            else None
        )
        if self.text_metric is not None:  # a user metric's mistake shows now, not in a trial
            references = self.data.validation_references
            score_answers(self.text_metric, objective.metric_name, references, references)

    def score(self, model: Any, prompts: list[list[int]], references: list[str]) -> float | None:
        """The text metric of ``model``'s greedy answers to ``prompts``; ``None`` without one."""
        if self.text_metric is None or not prompts:
            return None
        objective = self.config.objective
        answers = generate_answers(
            model, self.tokenizer, prompts, max_new_tokens=objective.max_new_tokens
        )
        return score_answers(self.text_metric, objective.metric_name, answers, references)

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
        """Train ``hp`` with ``seed`` and measure the validation split after every epoch.

        The seed fixes the adapter initialisation and the data order, so two configurations
        trained on the same seed are paired. A non-finite loss stops the run at once; so does
        ``on_epoch`` returning False. With ``evaluate_test`` the test split is measured too.
        Out-of-memory errors propagate, after the run's memory is released.

        With a ``run_name`` (e.g. ``"demo.epochs/trial-3"``), each epoch is saved under
        ``<output_dir>/checkpoints/<run_name>/seed-<seed>`` (best and last kept) when
        ``training.checkpoints`` is on, and logged to ``training.report_to`` trackers under
        ``<output_dir>/logs/<run_name>/seed-<seed>``.

        ``resume_from`` is the checkpoint directory of an interrupted run of the same
        configuration and seed: training goes on after its last epoch checkpoint (weights,
        optimizer, scheduler, data order and random state restored, so the run ends as an
        uninterrupted one would), its earlier epochs replayed through ``on_epoch``.
        """
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from torch.utils.data import DataLoader
        from transformers import DataCollatorForSeq2Seq, get_scheduler

        if self.leader:  # the other processes train the same run with us, in lockstep
            options = {"evaluate_test": evaluate_test, "run_name": run_name}
            broadcast(("train", hp, seed, options))
        training = self.config.training
        output = Path(self.config.output_dir)
        trackers = list(training.report_to) if run_name is not None else []
        accelerator = Accelerator(
            gradient_accumulation_steps=hp.gradient_accumulation_steps,
            mixed_precision=_mixed_precision(),
            cpu=not torch.cuda.is_available(),
            log_with=trackers or None,
            project_dir=str(output / "logs") if trackers else None,
        )
        if trackers:
            hparams = {k: v for k, v in hp.to_dict().items() if v is not None}
            accelerator.init_trackers(f"{run_name}/seed-{seed}", config=hparams)
        checkpoint_dir = None
        if training.checkpoints and run_name is not None:
            checkpoint_dir = output / "checkpoints" / run_name / f"seed-{seed}"
            if accelerator.is_main_process and checkpoint_dir.exists():
                remove_leftovers(checkpoint_dir)  # of a process killed while saving
        set_seed(seed)
        model = self._load_model()
        if self.config.training.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            if hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()  # LoRA: the frozen embeddings need it
        collate = DataCollatorForSeq2Seq(self.tokenizer, padding=True, label_pad_token_id=-100)
        order = torch.Generator().manual_seed(seed)  # the data order, saved for a resume
        train_loader = DataLoader(
            self.data.train,
            batch_size=hp.batch_size,
            shuffle=True,
            collate_fn=collate,
            generator=order,
        )
        # Every process measures the whole validation split on its own copy of the weights
        # (the same on all): the values agree exactly, with no gathering to get wrong.
        eval_loader = _OnDevice(
            DataLoader(self.data.validation, batch_size=max(hp.batch_size, 16),
                       collate_fn=collate),
            accelerator.device,
        )  # fmt: skip
        # The validation loss before training: where the loss starts, for the divergence watch
        # and the diagnosis. Its own generator: the global one must not move (see below).
        # Every run starts from the same function (the pretrained model; a new LoRA adapter
        # adds exactly zero), so it is measured once per runner, at a fixed batch size.
        initial_loader = _OnDevice(
            DataLoader(
                self.data.validation,
                batch_size=16,
                collate_fn=collate,
                generator=torch.Generator().manual_seed(0),
            ),
            accelerator.device,
        )
        test_loader = None
        if evaluate_test and self.data.test is not None:
            # Its own generator: iterating a DataLoader draws a seed from the one it has, and
            # the global one drives dropout; the final runs must train as the trials did.
            test_loader = _OnDevice(
                DataLoader(
                    self.data.test,
                    batch_size=max(hp.batch_size, 16),
                    collate_fn=collate,
                    generator=torch.Generator().manual_seed(0),
                ),
                accelerator.device,
            )
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=hp.learning_rate,
            weight_decay=hp.weight_decay,
        )
        steps = math.ceil(len(train_loader) / hp.gradient_accumulation_steps) * hp.epochs
        scheduler = get_scheduler(
            hp.scheduler,
            optimizer=optimizer,
            num_warmup_steps=round(hp.warmup_ratio * steps),
            num_training_steps=steps,
        )
        model, optimizer, train_loader, scheduler = accelerator.prepare(
            model, optimizer, train_loader, scheduler
        )
        result = RunResult(seed=seed, processes=accelerator.num_processes)
        run = _RunState(model, optimizer, scheduler, order, DivergenceWatch())
        try:
            if self._initial_eval_loss is None:
                self._initial_eval_loss = evaluate_loss(accelerator.unwrap_model(model),
                                                        initial_loader)  # fmt: skip
            result.initial_eval_loss = self._initial_eval_loss
            run.watch = DivergenceWatch(start=result.initial_eval_loss)
            resumed = None
            if resume_from is not None and accelerator.num_processes == 1:
                resumed = _resume(accelerator, run, result, resume_from, on_epoch)
            if resumed is None or (resumed < hp.epochs and not result.stopped_early):
                first_epoch = (resumed or 0) + 1
                self._epochs(accelerator, run, train_loader, eval_loader, hp, result, on_epoch,
                             test_loader, checkpoint_dir, first_epoch=first_epoch)  # fmt: skip
            if checkpoint_dir is not None and checkpoint_dir.is_dir():
                drop_training_state(checkpoint_dir)  # finished: it will never be resumed
        finally:
            if trackers:
                accelerator.end_training()
            # Free the run before the next one: each trial may have another footprint.
            self._keep_base(accelerator.unwrap_model(model))
            accelerator.free_memory()
            del model, optimizer, scheduler, run
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return result

    def _epochs(
        self,
        accelerator: Any,
        run: _RunState,
        train_loader: Any,
        eval_loader: Any,
        hp: HParams,
        result: RunResult,
        on_epoch: EpochCallback | None,
        test_loader: Any = None,
        checkpoint_dir: Path | None = None,
        *,
        first_epoch: int = 1,
    ) -> None:
        objective = self.config.objective
        model, optimizer, scheduler, watch = run.model, run.optimizer, run.scheduler, run.watch
        model.train()
        start = time.perf_counter() - result.seconds  # a resumed run goes on counting
        for epoch in range(first_epoch, hp.epochs + 1):
            loss_sum, n_batches = 0.0, 0
            for batch in train_loader:
                raise_if_interrupted()  # a signal stops here, between steps
                with accelerator.accumulate(model):
                    loss = self.step_loss(model, batch, epoch)
                    # The mean over processes: all see the same value and stop together.
                    loss_value = accelerator.reduce(loss.detach().float(), "mean").item()
                    why = watch.update(loss_value)
                    if why is not None:
                        result.diverged = True
                        result.diverged_at = f"epoch {epoch}, step {n_batches + 1} ({why})"
                        result.seconds = time.perf_counter() - start
                        return
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and hp.max_grad_norm:
                        accelerator.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                loss_sum += loss_value
                n_batches += 1
                result.train_examples += int(batch["input_ids"].shape[0]) * result.processes
                result.train_tokens += int(batch["attention_mask"].sum()) * result.processes
            result.seconds = time.perf_counter() - start
            eval_loss = evaluate_loss(accelerator.unwrap_model(model), eval_loader)
            score = self.score(
                accelerator.unwrap_model(model),
                self.data.validation_prompts,
                self.data.validation_references,
            )
            metrics = EpochMetrics(
                epoch=epoch,
                train_loss=loss_sum / max(n_batches, 1),
                eval_loss=eval_loss,
                score=score,
                learning_rate=scheduler.get_last_lr()[0],
            )
            if test_loader is not None:
                self._evaluate_test(accelerator, model, test_loader, metrics)
            result.epochs.append(metrics)
            logged = {k: v for k, v in asdict(metrics).items() if v is not None and k != "epoch"}
            accelerator.log(logged, step=epoch)
            if (
                checkpoint_dir is not None
                and math.isfinite(eval_loss)
                and accelerator.is_main_process
            ):
                save_checkpoint(accelerator.unwrap_model(model), checkpoint_dir, epoch,
                                asdict(metrics), run.training_state(result))  # fmt: skip
                key = "score" if objective.is_text_metric else "eval_loss"  # metrics.json keys
                retain_best_and_last(checkpoint_dir, key, objective.goal)
            if not math.isfinite(eval_loss):
                result.diverged, result.diverged_at = True, f"epoch {epoch} (validation)"
                return
            start_loss = result.initial_eval_loss
            if start_loss is not None and eval_loss > _EXPLODED_VALIDATION * start_loss:
                result.diverged = True
                result.diverged_at = (
                    f"epoch {epoch} (validation loss {eval_loss:.4g}, past "
                    f"{_EXPLODED_VALIDATION:g}x its start {start_loss:.4g})"
                )
                return
            stop = on_epoch is not None and on_epoch(result.seed, metrics) is False
            if broadcast(stop):  # pruning and early stopping are decided by process 0
                result.stopped_early = True
                return
            start = time.perf_counter() - result.seconds  # evaluation is not training time

    def _reuses_base(self) -> bool:
        # Sound for LoRA: the base's weights are frozen. Not for full fine-tuning (they train),
        # QLoRA or gradient checkpointing (both change the base in place when preparing it).
        return self.config.method.type == "lora" and not self.config.training.gradient_checkpointing

    def _load_model(self) -> Any:
        if not self._reuses_base():
            return load_model(self.config.model, self.config.method)
        if self._base is None:
            self._base = load_base_model(self.config.model, self.config.method)
        return add_adapter(self._base, self.config.method)

    def _keep_base(self, model: Any) -> None:
        if self._reuses_base() and hasattr(model, "unload"):
            self._base = model.unload()  # the adapter's layers out, the base as loaded

    def step_loss(self, model: Any, batch: dict[str, Any], epoch: int) -> Any:
        """The training loss of one batch (a seam for tests that inject faults)."""
        return model(**batch).loss

    def probe_memory(self, batch_sizes: list[int]) -> dict[int, float]:
        """Peak GPU memory of one training step per batch size, on the longest examples.

        Returns an empty dict without CUDA. The probed model is freed afterwards.
        """
        import torch

        if not torch.cuda.is_available():
            return {}
        from transformers import DataCollatorForSeq2Seq

        from hptune.train.memory import probe_peak_memory

        collate = DataCollatorForSeq2Seq(self.tokenizer, padding=True, label_pad_token_id=-100)
        lengths = [len(ids) for ids in self.data.train["input_ids"]]
        longest = sorted(range(len(lengths)), key=lambda i: -lengths[i])

        def batch_of(size: int) -> dict[str, Any]:
            rows = [self.data.train[i] for i in longest[:size]]
            return dict(collate(rows))

        model = load_model(self.config.model, self.config.method).to("cuda")
        if self.config.training.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        model.train()
        try:
            return probe_peak_memory(model, batch_of, batch_sizes)
        finally:
            del model
            gc.collect()
            torch.cuda.empty_cache()

    def _evaluate_test(
        self, accelerator: Any, model: Any, test_loader: Any, metrics: EpochMetrics
    ) -> None:
        metrics.test_loss = evaluate_loss(accelerator.unwrap_model(model), test_loader)
        metrics.test_score = self.score(
            accelerator.unwrap_model(model), self.data.test_prompts, self.data.test_references
        )


#: A validation loss this many times the one before training ends the run as diverged
#: (the same threshold as :mod:`hptune.diagnose`).
_EXPLODED_VALIDATION = 1.5


class _OnDevice:
    """Iterate a DataLoader with each batch moved to ``device``."""

    def __init__(self, loader: Any, device: Any) -> None:
        self.loader = loader
        self.device = device

    def __iter__(self) -> Any:
        for batch in self.loader:
            yield {k: v.to(self.device) for k, v in batch.items()}


def _mixed_precision() -> str:
    import torch

    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
