"""What every training backend shares: the data and tokenizer (loaded once), the model of a
run, and the measurement at the end of each epoch that the decisions are taken on.

A backend (`hptune.train.loop.Runner`, hptune's own Accelerate loop;
`hptune.train.trainer.TrainerRunner`, a transformers ``Trainer``;
`hptune.train.sft.SFTRunner`, TRL's ``SFTTrainer``; `hptune.train.user.FunctionRunner`, the
user's own training) declares what it can do (``declared``, from `hptune.config._backends`)
and implements `RunnerBase.train_job`. Validation is always measured here, the same way, so
trials trained by different backends are scored alike.
"""

from __future__ import annotations

import copy
import gc
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

from hptune._lazy import torch, transformers
from hptune.config import TuneConfig
from hptune.config._backends import Declared
from hptune.hparams import HParams
from hptune.train._eval_loaders import EvalLoaders, eval_loaders
from hptune.train._looks import EpochLooks
from hptune.train._parallel import broadcast, is_main_process
from hptune.train._results import EpochCallback, EpochMetrics, RunJob, RunResult
from hptune.train.checkpoints import (
    checkpoint_path,
    remove_leftovers,
    retain_best_and_last,
    save_checkpoint,
)
from hptune.train.data import PreparedData, prepare_data
from hptune.train.memory import probe_peak_memory
from hptune.train.metrics import evaluate_loss, generate_answers, resolve_metric, score_answers
from hptune.train.model import (
    add_adapter,
    check_context,
    check_method_supported,
    load_base_model,
    load_model,
    load_tokenizer,
)

__all__ = ["EXPLODED_VALIDATION", "EvalLoaders", "RunnerBase"]

#: A validation loss this many times the one before training ends the run as diverged
#: (the same threshold as `hptune.diagnose`).
EXPLODED_VALIDATION = 1.5


class RunnerBase(ABC):
    """Trains configurations of one `TuneConfig`; data and tokenizer load once.

    Args:
        config: The run's configuration.
        check_method: Refuse a method this machine cannot train (QLoRA without CUDA) now;
            ``hptune plan`` turns it off to plan for another machine.

    Raises:
        DataError: A data file is missing, empty or malformed.
        ModelError: The model or its tokenizer cannot be loaded.
        UnsupportedError: The method cannot run on this machine.
    """

    #: What the backend can do, declared where the configuration reads it too
    #: (`hptune.config._backends`): its name, tokenization, seeds together, the keys it
    #: honours. Every backend class sets its own.
    declared: ClassVar[Declared]
    #: What trains the runs, in the study's setup: runs are mixed in one study only when
    #: they train alike (hptune's loop, the Trainer and the SFTTrainer do; a user's hook may
    #: not; hptune's loop before it trained as the Trainer did not).
    trains_as = "trainer-equivalent"

    def __init__(self, config: TuneConfig, *, check_method: bool = True) -> None:
        self.config = config
        #: The backend's name, as ``training.backend`` spells it (recorded with the run).
        self.backend = self.declared.name
        #: Set on process 0 of a data-parallel launch: it tells the others what to train.
        self.leader = False
        #: A LoRA run's frozen base model, kept across runs and seeds: each run adds a fresh
        #: adapter (seeded) and removes it after, so the base never changes and is loaded once.
        self._base: Any = None
        self._initial_eval_loss: float | None = None
        if check_method:
            check_method_supported(config.method)
        self.tokenizer = load_tokenizer(config.model)
        objective = config.objective
        self.data: PreparedData = prepare_data(
            config.data,
            self.tokenizer,
            max_train_examples=config.training.max_train_examples,
            max_validation_examples=config.training.max_validation_examples,
            eval_samples=objective.eval_samples,
            tokenization=config.data.tokenization_for(config.training.backend),
        )
        check_context(config.model, config.data.max_length, self.data.longest)
        #: Scores generated answers; ``None`` when the metric is the validation loss.
        self.text_metric = (
            resolve_metric(objective.metric, objective.search_dir)
            if objective.is_text_metric
            else None
        )
        if self.text_metric is not None:  # a user metric's mistake shows now, not in a trial
            references = self.data.validation_references
            score_answers(self.text_metric, objective.metric_name, references, references)

    def with_config(self, config: TuneConfig) -> RunnerBase:
        """This trainer for ``config``, sharing what it loaded (data, tokenizer, base model).

        For a configuration that trains the same model on the same data (e.g. the budget fit,
        which changes only seeds and phases); the original is left as it was.

        Args:
            config: The configuration to train with.

        Returns:
            A shallow copy with ``config``.
        """
        twin = copy.copy(self)
        twin.config = config
        return twin

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

        Args:
            hp: The configuration to train.
            seed: The seed of this run.
            on_epoch: Called with the seed and each epoch's metrics; False stops the run.
            evaluate_test: Measure the test split after every epoch too.
            run_name: e.g. ``"demo.epochs/trial-3"``: epoch checkpoints go under
                ``<output_dir>/checkpoints/<run_name>/seed-<seed>`` when
                ``training.checkpoints`` is on, tracker logs under ``<output_dir>/logs``.
            resume_from: The checkpoint directory of an interrupted run of the same
                configuration and seed, for backends that can go on from it.

        Returns:
            Each epoch's metrics, and whether the run diverged or was stopped early.
        """
        checkpoint_dir = self.begin_run(hp, seed, evaluate_test=evaluate_test, run_name=run_name)
        job = RunJob(hp, seed, on_epoch, evaluate_test, run_name, resume_from, checkpoint_dir)
        return self.train_job(job)

    @abstractmethod
    def train_job(self, job: RunJob) -> RunResult:
        """Train one run (`train` has told the other processes and cleared its checkpoint
        directory); what each backend implements.

        Args:
            job: The run: its configuration, seed, callback and checkpoint directory.

        Returns:
            Each epoch's metrics, and whether the run diverged or was stopped early.
        """

    def begin_run(
        self, hp: HParams, seed: int, *, evaluate_test: bool, run_name: str | None
    ) -> Path | None:
        """What every backend's ``train`` does first: on process 0 of a data-parallel launch,
        tell the others to train this run too; then the run's checkpoint directory, cleared
        of what a process killed while saving left there.

        Returns:
            The checkpoint directory (see `checkpoint_dir`); None when checkpoints are off.
        """
        if self.leader:  # the other processes train the same run with us, in lockstep
            options = {"evaluate_test": evaluate_test, "run_name": run_name}
            broadcast(("train", hp, seed, options))
        checkpoint_dir = self.checkpoint_dir(run_name, seed)
        if checkpoint_dir is not None and checkpoint_dir.exists() and is_main_process():
            remove_leftovers(checkpoint_dir)  # of a process killed while saving
        return checkpoint_dir

    def score(self, model: Any, prompts: list[list[int]], references: list[str]) -> float | None:
        """The text metric of ``model``'s greedy answers to ``prompts``; ``None`` without one."""
        if self.text_metric is None or not prompts:
            return None
        objective = self.config.objective
        answers = generate_answers(
            model, self.tokenizer, prompts, max_new_tokens=objective.max_new_tokens
        )
        return score_answers(self.text_metric, objective.metric_name, answers, references)

    # -- the model of a run -------------------------------------------------------------

    def _reuses_base(self) -> bool:
        # Sound for LoRA: the base's weights are frozen. Not for full fine-tuning (they train),
        # QLoRA or gradient checkpointing (both change the base in place when preparing it).
        return self.config.method.reuses_base() and not self.config.training.gradient_checkpointing

    def load_run_model(self, hp: HParams | None = None) -> Any:
        """The model a run starts from: the base with a fresh adapter (LoRA, QLoRA), or the
        whole pretrained model (full). Call after seeding: the adapter's initialisation
        draws from the global random state.

        Args:
            hp: The run's hyperparameters: their LoRA rank and alpha, where a phase set
                them, replace the method's.
        """
        method = self.config.method
        if hp is not None and (hp.lora_r is not None or hp.lora_alpha is not None):
            update = {"r": hp.lora_r or method.r, "alpha": hp.lora_alpha or method.alpha}
            method = method.model_copy(update=update)
        if not self._reuses_base():
            model = load_model(self.config.model, method)
        else:
            if self._base is None:
                self._base = load_base_model(self.config.model, method)
            model = add_adapter(self._base, method)
        if self.config.training.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            if hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()  # LoRA: the frozen embeddings need it
        return model

    def release_run_model(self, model: Any) -> None:
        """Free a finished run's model; a reused base keeps its weights, without the adapter."""
        if self._reuses_base() and hasattr(model, "unload"):
            self._base = model.unload()  # the adapter's layers out, the base as loaded
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- validation, the same for every backend ------------------------------------------

    def collator(self) -> Any:
        """Pads input ids and labels (``-100`` on padding) of a batch."""
        return transformers.DataCollatorForSeq2Seq(
            self.tokenizer, padding=True, label_pad_token_id=-100
        )

    def eval_loaders(self, hp: HParams, device: Any, *, test: bool) -> EvalLoaders:
        """The validation (and, with ``test``, test) batches of a run, on ``device``."""
        test_split = self.data.test if test else None
        return eval_loaders(
            self.data.validation, test_split, self.collator(), hp.batch_size, device
        )

    def initial_loss(self, model: Any, loaders: EvalLoaders) -> float:
        """The validation loss before training (measured on the first run, then reused)."""
        if self._initial_eval_loss is None:
            self._initial_eval_loss = evaluate_loss(model, loaders.initial)
        return self._initial_eval_loss

    def epoch_looks(
        self, steps_per_epoch: int, on_epoch: EpochCallback | None, loaders: EvalLoaders
    ) -> EpochLooks:
        """The run's looks within each epoch (``training.eval_steps``), measured as the
        epoch's end measures the objective, on the same validation examples."""

        def measure(model: Any) -> float:
            if self.text_metric is None:
                return evaluate_loss(model, loaders.validation)
            data = self.data
            value = self.score(model, data.validation_prompts, data.validation_references)
            return math.nan if value is None else value

        return EpochLooks(steps_per_epoch, self.config.training.eval_steps, on_epoch, measure)

    def measure_epoch(
        self,
        model: Any,
        loaders: EvalLoaders,
        *,
        epoch: int,
        train_loss: float,
        learning_rate: float,
        eval_loss: float | None = None,
    ) -> EpochMetrics:
        """Validation loss and text metric after ``epoch`` (and the test split's, if loaded);
        ``eval_loss``: the validation loss, when already measured (adapters stacked)."""
        if eval_loss is None:
            eval_loss = evaluate_loss(model, loaders.validation)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            eval_loss=eval_loss,
            score=self.score(model, self.data.validation_prompts, self.data.validation_references),
            learning_rate=learning_rate,
        )
        if loaders.test is not None:
            metrics.test_loss = evaluate_loss(model, loaders.test)
            metrics.test_score = self.score(
                model, self.data.test_prompts, self.data.test_references
            )
        return metrics

    def close_epoch(
        self,
        model: Any,
        metrics: EpochMetrics,
        result: RunResult,
        on_epoch: EpochCallback | None,
        *,
        checkpoint_dir: Path | None = None,
        training_state: Callable[[], dict[str, Any]] | None = None,
    ) -> bool:
        """Record an epoch: its checkpoint, then whether the run goes on.

        Returns False when the run ends here: its validation loss is non-finite or exploded
        past `EXPLODED_VALIDATION` times its start (``result.diverged``), or
        ``on_epoch`` stopped it (``result.stopped_early``). Call on every process: only
        process 0 saves the checkpoint and decides to stop, the others follow.
        """
        objective = self.config.objective
        result.epochs.append(metrics)
        eval_loss = metrics.eval_loss
        if checkpoint_dir is not None and math.isfinite(eval_loss) and is_main_process():
            state = training_state() if training_state is not None else None  # with this epoch
            save_checkpoint(model, checkpoint_dir, metrics.epoch, asdict(metrics), state)
            key = "score" if objective.is_text_metric else "eval_loss"  # metrics.json keys
            retain_best_and_last(checkpoint_dir, key, objective.goal)
        if not math.isfinite(eval_loss):
            result.diverged, result.diverged_at = True, f"epoch {metrics.epoch} (validation)"
            return False
        start = result.initial_eval_loss
        if start is not None and eval_loss > EXPLODED_VALIDATION * start:
            result.diverged = True
            result.diverged_at = (
                f"epoch {metrics.epoch} (validation loss {eval_loss:.4g}, past "
                f"{EXPLODED_VALIDATION:g}x its start {start:.4g})"
            )
            return False
        stop = on_epoch is not None and on_epoch(result.seed, metrics) is False
        if broadcast(stop):  # pruning and early stopping are decided by process 0
            result.stopped_early = True
            return False
        return True

    def checkpoint_dir(self, run_name: str | None, seed: int) -> Path | None:
        """Where a run's epoch checkpoints go, or None when they are off."""
        if not self.config.training.checkpoints or run_name is None:
            return None
        return checkpoint_path(self.config.output_dir, run_name, seed)

    def probe_memory(self, batch_sizes: list[int]) -> dict[int, float]:
        """Peak GPU memory of one training step per batch size, on the longest examples.

        Returns an empty dict without CUDA. The probed model is freed afterwards.
        """
        if not torch.cuda.is_available():
            return {}
        collate = self.collator()
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
