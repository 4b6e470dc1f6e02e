"""The sections of a configuration: the model, the method, the data, the objective, training."""

# Pydantic copies a field's mutable default for each instance; ruff knows that only of models
# whose pydantic base is in the same file, and _Strict is in another.
# ruff: noqa: RUF012

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from hptune.config._base import SchedulerName, _Strict


class ModelConfig(_Strict):
    """The base model: a local directory (or ``demo://model``) or a hub id."""

    #: A local model directory (what ``save_pretrained`` writes), ``demo://model``, or a hub
    #: id (read from the local Hugging Face cache when offline).
    path: str
    #: Run Python code shipped with the model (``auto_map``); off unless you trust its source.
    trust_remote_code: bool = False
    #: Weight dtype: ``auto`` is bfloat16 (or float16) on a GPU and float32 on a CPU.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


class MethodConfig(_Strict):
    """How the model is fine-tuned: ``lora``, ``qlora`` (4-bit base + LoRA) or ``full``."""

    #: ``lora``, ``qlora`` (needs CUDA and bitsandbytes) or ``full`` (every weight trains).
    type: Literal["lora", "qlora", "full"] = "lora"
    #: The LoRA rank: the adapter's inner dimension.
    r: int = Field(8, gt=0)
    #: The LoRA scale numerator: the adapter's update is scaled by ``alpha / r``.
    alpha: int = Field(16, gt=0)
    #: Dropout on the adapter's input during training.
    dropout: float = Field(0.05, ge=0, lt=1)
    #: The modules that get an adapter: names (e.g. ``q_proj``) or ``all-linear``.
    target_modules: list[str] | Literal["all-linear"] = ["q_proj", "v_proj"]


class DataConfig(_Strict):
    """The data: JSONL/JSON/CSV files per split, or an in-memory ``datasets.DatasetDict``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    #: The training split: a .jsonl, .json, .csv or .parquet file (or ``demo://...``).
    train: str | None = None
    #: The validation split every decision is scored on.
    validation: str | None = None
    #: The test split: measured once, at the end, never used for a decision.
    test: str | None = None
    #: In Python only: a ``datasets.DatasetDict`` with train and validation (and test) splits.
    dataset: Any = Field(None, exclude=True)
    #: The record field holding the prompt (when no template is given).
    prompt_field: str = "question"
    #: The record field holding the answer: the only tokens trained and scored.
    response_field: str = "answer"
    #: A prompt template naming record fields in braces, e.g. ``Question: {question}``.
    template: str | None = None
    #: Tokens per example (prompt + answer); longer answers are cut.
    max_length: int = Field(256, gt=8)

    @model_validator(mode="after")
    def _train_and_validation_given(self) -> DataConfig:
        if self.dataset is not None:
            missing = [s for s in ("train", "validation") if s not in self.dataset]
            if missing:
                raise ValueError(f"the dataset has no {' or '.join(missing)} split")
        elif self.train is None or self.validation is None:
            raise ValueError(
                "give both data.train and data.validation (file paths), or a DatasetDict as "
                "data.dataset; tuning on the test split is never allowed"
            )
        if self.template is not None and "{" not in self.template:
            raise ValueError(
                "data.template must name record fields in braces, e.g. "
                "'Question: {question}\\nAnswer: '"
            )
        return self


class ObjectiveConfig(_Strict):
    """What trials are scored on: the validation split's loss or BLEU, over several seeds."""

    #: The validation loss (minimized) or BLEU via sacrebleu (maximized).
    metric: Literal["eval_loss", "bleu"] = "eval_loss"
    #: Paired seeds per configuration: a count N (seeds 0 to N-1) or a list of seeds.
    seeds: int | list[int] = 3
    #: Validation examples whose generated answers are scored with BLEU each epoch.
    bleu_samples: int = Field(64, gt=0)
    #: The longest answer generated for BLEU, in tokens.
    max_new_tokens: int = Field(32, gt=0)
    #: The largest difference in the metric that does not matter: candidates whose paired
    #: difference is shown to be within it are equivalent, and only then does the cheaper
    #: one win (fewer epochs, the faster batch). Default: half the typical seed standard
    #: deviation of the phase's candidates.
    equivalence_margin: float | None = Field(None, ge=0)
    #: Racing: when the best configuration and a contender are neither equivalent nor told
    #: apart, both get more paired seeds, one at a time, up to this many in all (no racing
    #: when it is not above the number of seeds).
    max_seeds: int = Field(5, ge=1)

    @field_validator("seeds")
    @classmethod
    def _seeds_valid(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and seeds < 1:
            raise ValueError("needs at least one seed (three are recommended)")
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError("the seed list must be non-empty and without repeats")
        return seeds

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "minimize" if self.metric == "eval_loss" else "maximize"

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def racing_seeds(self) -> list[int]:
        """The seeds racing may add, in order: the next integers not already in use."""
        used = self.seed_list
        extra: list[int] = []
        candidate = max(used) + 1
        while len(used) + len(extra) < self.max_seeds:
            extra.append(candidate)
            candidate += 1
        return extra


class TrainingConfig(_Strict):
    """The hyperparameters of one run; ``None`` means "fill from the presets"."""

    #: A preset machine whose batch, accumulation and method recommendations fill the gaps.
    situation: Literal["colab_pro", "colab_free", "aws_a100"] | None = None
    #: The GPU's memory in GB, for the presets and the batch phase's limit (default: the
    #: GPU's own, where there is one).
    gpu_memory_gb: float | None = Field(None, gt=0)
    #: The starting learning rate (default: the method's preset).
    learning_rate: float | None = Field(None, gt=0, lt=1)
    #: The starting per-device batch size (default: from the presets and the memory).
    batch_size: int | None = Field(None, gt=0)
    #: Batches accumulated per optimizer step (effective batch = batch x accumulation).
    gradient_accumulation_steps: int | None = Field(None, gt=0)
    #: The starting number of epochs (default: from the training set's size).
    epochs: int | None = Field(None, gt=0)
    #: The share of optimizer steps spent warming the learning rate up.
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    #: AdamW's decoupled weight decay.
    weight_decay: float | None = Field(None, ge=0, lt=1)
    #: The learning-rate schedule after warmup (transformers' ``get_scheduler`` names).
    scheduler: SchedulerName = "linear"
    #: Gradient clipping by global norm; None turns clipping off.
    max_grad_norm: float | None = Field(1.0, gt=0)
    #: Train on the first N training examples only (quick checks, demos).
    max_train_examples: int | None = Field(None, gt=0)
    #: Stop a seed's run when the validation metric has not improved for this many epochs
    #: (its best epoch is kept); None trains every epoch.
    early_stopping_patience: int | None = Field(2, gt=0)
    #: Recompute activations in the backward pass: less memory, slower steps.
    gradient_checkpointing: bool = False
    #: Save every epoch of every trial (safetensors) under <output_dir>/checkpoints, keeping
    #: the best and the last of each run; pruned and failed trials' checkpoints are removed.
    checkpoints: bool = True
    #: Trackers to log each trial and seed to, through Accelerate, under <output_dir>/logs:
    #: tensorboard (pip install tensorboard), wandb, mlflow.
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = []

    @field_validator("report_to")
    @classmethod
    def _trackers_installed(cls, report_to: list[str]) -> list[str]:
        import importlib.util

        missing = [t for t in report_to if importlib.util.find_spec(t) is None]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} is not installed; pip install {' '.join(missing)} "
                "or remove it from training.report_to"
            )
        return report_to
