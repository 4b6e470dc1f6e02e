"""The sections of a configuration: the model, the method and training (the data's is
`hptune.config._data`, the objective's `hptune.config._objective`)."""

# Pydantic copies a field's mutable default for each instance; ruff knows that only of models
# whose pydantic base is in the same file, and _Strict is in another.
# ruff: noqa: RUF012

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from hptune.config._backends import ACCELERATE, BACKENDS, BackendName
from hptune.config._base import SchedulerName, _Strict
from hptune.config._passthrough import (
    LORA_KEYS_BASE_UNCHANGED,
    check_lora_keys,
    check_training_args,
    lift_same_args,
)
from hptune.presets import DEVICE_NAMES


class ModelConfig(_Strict):
    """The base model: a local directory (or ``demo://model``) or a hub id."""

    #: A local model directory (what ``save_pretrained`` writes), ``demo://model``, or a hub
    #: id (read from the local Hugging Face cache when offline).
    path: str
    #: Run Python code shipped with the model (``auto_map``); off unless you trust its source.
    trust_remote_code: bool = False
    #: Weight dtype: ``auto`` is bfloat16 (or float16) on a GPU and float32 on a CPU.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    #: Download a hub model that is not in the local Hugging Face cache. Off: a hub id is
    #: read from the cache only, without touching the network.
    allow_download: bool = False
    #: A GGUF checkpoint in ``path``'s folder (or give ``path`` as the ``.gguf`` file itself):
    #: weights, tokenizer and chat template load through transformers' GGUF reader (the
    #: ``gguf`` package), dequantized to the training dtype.
    gguf_file: str | None = None

    @model_validator(mode="after")
    def _gguf_path(self) -> ModelConfig:
        # a path to the .gguf file itself: its folder is what from_pretrained reads
        if self.gguf_file is None and self.path.lower().endswith(".gguf"):
            folder, _, name = self.path.replace("\\", "/").rpartition("/")
            self.path, self.gguf_file = folder or ".", name
        if self.gguf_file is not None and "/" in self.gguf_file:
            raise ValueError(
                "model.gguf_file is a file name in model.path's folder, without a folder: "
                f"got {self.gguf_file!r}; give the folder as model.path"
            )
        return self


class MethodConfig(_Strict):
    """How the model is fine-tuned: ``lora``, ``qlora`` (4-bit base + LoRA) or ``full``."""

    #: ``lora``, ``qlora`` (needs CUDA and bitsandbytes) or ``full`` (every weight trains).
    type: Literal["lora", "qlora", "full"] = "lora"
    #: The LoRA rank: the adapter's inner dimension (also read as ``lora_r``).
    r: int = Field(8, gt=0, validation_alias=AliasChoices("r", "lora_r"))
    #: The LoRA scale numerator: the adapter's update is scaled by ``alpha / r`` (also
    #: read as ``lora_alpha``).
    alpha: int = Field(16, gt=0, validation_alias=AliasChoices("alpha", "lora_alpha"))
    #: Dropout on the adapter's input during training (also read as ``lora_dropout``).
    dropout: float = Field(
        0.05, ge=0, lt=1, validation_alias=AliasChoices("dropout", "lora_dropout")
    )
    #: The modules that get an adapter: names (e.g. ``q_proj``) or ``all-linear``.
    target_modules: list[str] | Literal["all-linear"] = ["q_proj", "v_proj"]
    #: Any other ``peft.LoraConfig`` key, passed through as given: ``use_rslora``,
    #: ``use_dora``, ``modules_to_save``, ``bias``, ``layers_to_transform``,
    #: ``init_lora_weights``... (checked against the installed peft; the rank, alpha, dropout
    #: and target modules are the keys above). The export's ``lora_config`` carries them.
    lora: dict[str, Any] = {}
    #: LoRA+: the adapter's B matrices learn this many times faster than its A matrices
    #: (peft's ``create_loraplus_optimizer``; e.g. 16). None: plain LoRA.
    loraplus_lr_ratio: float | None = Field(None, gt=0)

    @field_validator("lora")
    @classmethod
    def _lora_keys(cls, lora: dict[str, Any]) -> dict[str, Any]:
        if not lora:
            return lora
        check_lora_keys(lora)
        return lora

    @model_validator(mode="after")
    def _lora_needs_an_adapter(self) -> MethodConfig:
        if (self.lora or self.loraplus_lr_ratio) and self.type == "full":
            raise ValueError(
                "lora, loraplus_lr_ratio: LoRA keys apply to method.type lora or qlora, not "
                "full; remove them"
            )
        return self

    def reuses_base(self) -> bool:
        """Whether a run's adapter leaves the base model's weights as loaded (so one copy of
        the base serves every run): LoRA, with no LoRA key that trains or rewrites base
        weights (``modules_to_save``, a ``bias`` other than ``none``, an initialisation that
        changes the base such as PiSSA or LoftQ)."""
        if self.type != "lora":
            return False
        return set(self.lora) <= LORA_KEYS_BASE_UNCHANGED and self.lora.get(
            "init_lora_weights", True
        ) in (True, False, "gaussian")


class TrainingConfig(_Strict):
    """The hyperparameters of one run; ``None`` means "fill from the presets"."""

    #: A preset machine whose batch, accumulation and method recommendations fill the gaps.
    situation: Literal["colab_pro", "colab_free", "aws_a100"] | None = None
    #: The GPU's memory in GB, for the presets and the batch phase's limit (default: the
    #: GPU's own, where there is one).
    gpu_memory_gb: float | None = Field(None, gt=0)
    #: The machine the run is planned for: ``cpu``, ``cuda`` (any GPU; give
    #: ``gpu_memory_gb``), or a GPU by name: t4, v100-16gb, v100-32gb, a10g, l4, rtx3090,
    #: rtx4090, a100-40gb, l40s, a100-80gb, h100, h200. It sets the memory a step may use,
    #: the batch presets and the dtype of ``model.dtype: auto`` (bfloat16 where the GPU has
    #: it), so ``hptune plan`` on a laptop plans for the cluster. Default: this machine.
    device: str | None = None
    #: The starting learning rate (default: the method's preset).
    learning_rate: float | None = Field(None, gt=0, lt=1)
    #: The starting per-device batch size (default: from the presets and the memory; also
    #: read as ``per_device_train_batch_size``).
    batch_size: int | None = Field(
        None, gt=0, validation_alias=AliasChoices("batch_size", "per_device_train_batch_size")
    )
    #: Batches accumulated per optimizer step (effective batch = batch x accumulation).
    gradient_accumulation_steps: int | None = Field(None, gt=0)
    #: The starting number of epochs (default: from the training set's size; also read as
    #: ``num_train_epochs``).
    epochs: int | None = Field(
        None, gt=0, validation_alias=AliasChoices("epochs", "num_train_epochs")
    )
    #: The share of optimizer steps spent warming the learning rate up.
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    #: AdamW's decoupled weight decay.
    weight_decay: float | None = Field(None, ge=0, lt=1)
    #: The learning-rate schedule after warmup (transformers' ``get_scheduler`` names; also
    #: read as ``lr_scheduler_type``).
    scheduler: SchedulerName = Field(
        "linear", validation_alias=AliasChoices("scheduler", "lr_scheduler_type")
    )
    #: Gradient clipping by global norm; None turns clipping off.
    max_grad_norm: float | None = Field(1.0, gt=0)
    #: Train on the first N training examples only (quick checks, demos).
    max_train_examples: int | None = Field(None, gt=0)
    #: Validate on the first N validation examples only (quick checks: each epoch's
    #: validation costs less, its noise grows). Text metrics score ``objective.eval_samples``
    #: of these.
    max_validation_examples: int | None = Field(None, gt=0)
    #: Stop a seed's run when the validation metric has not improved for this many epochs
    #: (its best epoch is kept); None trains every epoch.
    early_stopping_patience: int | None = Field(2, gt=0)
    #: Also validate every N optimizer steps within an epoch, for the pruner only (a run
    #: of one or two long epochs leaves it nothing to look at otherwise); the values a seed
    #: is scored by, its checkpoints and early stopping stay per epoch. None: per epoch.
    eval_steps: int | None = Field(None, gt=0)
    #: Recompute activations in the backward pass: less memory, slower steps.
    gradient_checkpointing: bool = False
    #: Train a trial's K seeds as K LoRA adapters over one base, one step over their K
    #: sub-batches (hptune's loop); ``auto``: wherever the run allows it.
    seeds_together: bool | Literal["auto"] = False
    #: Also train trials of a phase that differ only in what one adapter holds on its own
    #: (learning rate, weight decay, schedule, warmup, clipping, LoRA alpha) in one stack,
    #: their seeds with them: the phase's queued points (the rate grid, the local rate sets,
    #: racing's extra seeds) as many at a time as the memory fits; ``auto``: wherever the
    #: run allows it.
    candidates_together: bool | Literal["auto"] = False
    #: Save every epoch of every trial (safetensors) under `<output_dir>/checkpoints`, keeping
    #: the best and the last of each run; pruned and failed trials' checkpoints are removed.
    checkpoints: bool = True
    #: The optimizer, by the Trainer's ``optim`` name (default: the Trainer's own,
    #: ``adamw_torch_fused``). hptune's loop trains ``adamw_torch`` or ``adamw_torch_fused``;
    #: the Trainer backends any name the installed transformers has (the 8-bit and paged
    #: ones need bitsandbytes and a GPU).
    optim: str | None = None
    #: Any other ``TrainingArguments`` key (``SFTConfig`` with ``backend: sft``), passed to
    #: each trial's Trainer and to the export as given: ``adam_beta2``,
    #: ``lr_scheduler_kwargs``, ``neftune_noise_alpha``... (checked against the installed
    #: class; a key that means a ``training`` key, e.g. ``lr_scheduler_type``, is read as
    #: it; other keys hptune sets are refused with the key to use). hptune's own loop honours
    #: ``adam_beta1``, ``adam_beta2``, ``adam_epsilon`` and ``lr_scheduler_kwargs``, and
    #: refuses the others by name.
    args: dict[str, Any] = {}
    #: Trackers to log each trial and seed to, through Accelerate, under `<output_dir>/logs`:
    #: tensorboard (pip install tensorboard), wandb, mlflow.
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = []
    #: Who trains each run: hptune's Accelerate loop (``accelerate``), a transformers
    #: ``Trainer`` (``trainer``) or TRL's ``SFTTrainer`` (``sft``: pip install 'hptune[sft]').
    #: All three train the same way and are scored by hptune's validation alike; what each
    #: can do is declared in `hptune.config._backends`.
    backend: BackendName = "accelerate"
    #: Your own training of one seed, as ``"module:function"`` (beside this file or on
    #: PYTHONPATH): ``function(run)`` trains ``run.hparams`` with ``run.seed`` and calls
    #: ``run.report(epoch, model=model)`` after each epoch. From Python: ``train_fn=``.
    train_fn: str | None = None
    #: Your own ``Trainer``, as ``"module:function"``: ``function(run)`` returns a Trainer
    #: built with ``run.training_arguments(...)``. From Python: ``trainer_factory=``.
    trainer_factory: str | None = None

    @field_validator("device")
    @classmethod
    def _device_known(cls, device: str | None) -> str | None:
        if device is None:
            return None
        name = device.strip().lower()
        if name not in DEVICE_NAMES:
            raise ValueError(
                f"unknown device {device!r}; use cpu, cuda (with training.gpu_memory_gb), or "
                f"one of {', '.join(DEVICE_NAMES[2:])}"
            )
        return name

    @field_validator("backend")
    @classmethod
    def _backend_installed(cls, backend: str) -> str:
        requires = BACKENDS[backend].requires
        if requires is not None and importlib.util.find_spec(requires[0]) is None:
            raise ValueError(requires[1])
        return backend

    @model_validator(mode="before")
    @classmethod
    def _lift_same_args(cls, values: Any) -> Any:
        return lift_same_args(values) if isinstance(values, dict) else values

    @model_validator(mode="after")
    def _passed_through(self) -> TrainingConfig:
        if self.args or self.optim is not None:
            check_training_args(self.args, self.optim, self.backend)
        return self

    @model_validator(mode="after")
    def _one_trainer(self) -> TrainingConfig:
        if self.train_fn is not None and self.trainer_factory is not None:
            raise ValueError("train_fn and trainer_factory both train each run: give one of them")
        if self.train_fn is not None and self.backend != ACCELERATE.name:
            raise ValueError(
                f"train_fn trains each run itself, so backend: {self.backend} would not be "
                "used: leave training.backend out"
            )
        return self

    @field_validator("report_to")
    @classmethod
    def _trackers_installed(cls, report_to: list[str]) -> list[str]:
        missing = [t for t in report_to if importlib.util.find_spec(t) is None]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} is not installed; pip install {' '.join(missing)} "
                "or remove it from training.report_to"
            )
        return report_to
