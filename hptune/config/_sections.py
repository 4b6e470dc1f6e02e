"""The sections of a configuration: the model, the method, the data, the objective, training."""

# Pydantic copies a field's mutable default for each instance; ruff knows that only of models
# whose pydantic base is in the same file, and _Strict is in another.
# ruff: noqa: RUF012

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from hptune.config._base import SchedulerName, _Strict
from hptune.config._passthrough import (
    LORA_KEYS_BASE_UNCHANGED,
    check_lora_keys,
    check_training_args,
    lift_same_args,
)


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
    dropout: float = Field(0.05, ge=0, lt=1,
                           validation_alias=AliasChoices("dropout", "lora_dropout"))  # fmt: skip
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


#: The metrics hptune computes itself: the validation loss, and text metrics on answers
#: generated greedily (BLEU and chrF via sacrebleu, exact match, ROUGE-L).
BUILTIN_METRICS = ("eval_loss", "bleu", "chrf", "exact_match", "rouge_l")


#: Names other libraries give the built-in metrics (evaluate, sacrebleu, the Trainer).
_METRIC_NAMES = {"rougel": "rouge_l", "rouge": "rouge_l", "loss": "eval_loss",
                 "sacrebleu": "bleu", "em": "exact_match", "exact": "exact_match"}  # fmt: skip


def _close_metric(name: str) -> str | None:
    """The built-in metric ``name`` most likely means (case, dashes and underscores aside)."""
    import difflib

    def bare(text: str) -> str:
        return text.lower().replace("-", "").replace("_", "")

    if bare(name) in _METRIC_NAMES:
        return _METRIC_NAMES[bare(name)]
    by_bare = {bare(m): m for m in BUILTIN_METRICS}
    close = difflib.get_close_matches(bare(name), list(by_bare), n=1, cutoff=0.7)
    return by_bare[close[0]] if close else None


def _builtin_direction(metric: Any) -> Literal["minimize", "maximize"]:
    return "minimize" if metric == "eval_loss" else "maximize"


class ObjectiveConfig(_Strict):
    """What trials are scored on: a validation metric, over several paired seeds."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, arbitrary_types_allowed=True
    )

    #: ``eval_loss`` (minimized), ``bleu``, ``chrf``, ``exact_match``, ``rouge_l`` (maximized,
    #: 0-100), or your function as ``"module:function"`` (importable from the configuration's
    #: folder or ``sys.path``; from Python, the function itself), called as
    #: ``fn(predictions: list[str], references: list[str]) -> float``.
    metric: Any = "eval_loss"
    #: ``maximize`` or ``minimize``: required for your own metric, fixed for the built-in ones
    #: (read the resolved one as ``goal``).
    direction: Literal["minimize", "maximize"] | None = None
    #: Paired seeds per configuration: a count N (seeds 0 to N-1) or a list of seeds.
    seeds: int | list[int] = 3
    #: Validation examples a text metric scores each epoch: a seeded random subset, the same
    #: for every trial (the test split is scored whole). ``bleu_samples`` is an older name.
    eval_samples: int = Field(
        64, gt=0, validation_alias=AliasChoices("eval_samples", "bleu_samples")
    )
    #: The longest answer generated for a text metric, in tokens.
    max_new_tokens: int = Field(32, gt=0)
    #: The largest difference in the metric that does not matter: candidates whose paired
    #: difference is shown to be within it are equivalent, and only then does the cheaper
    #: one win (fewer epochs, the faster batch). In the metric's units (``0.02``) or as a
    #: share of the best candidate's value (``"2%"``). Default: the paired noise of one seed
    #: (the seed model's, on the phase's candidates), at most one seed standard deviation;
    #: every decision states the seeds equivalence needs at that margin.
    equivalence_margin: float | str | None = None
    #: Racing: when the best configuration and a contender are neither equivalent nor told
    #: apart, both get more paired seeds, one at a time, up to this many in all (no racing
    #: when it is not above the number of seeds).
    max_seeds: int = Field(5, ge=1)
    #: Where ``"module:function"`` is imported from first: the configuration file's folder.
    _search_dir: str | None = PrivateAttr(None)

    @field_validator("equivalence_margin")
    @classmethod
    def _margin(cls, value: float | str | None) -> float | str | None:
        from hptune.seeds import resolve_margin

        resolve_margin(value, 1.0)  # a negative number or a bad percentage says how to fix it
        return value

    @field_validator("metric")
    @classmethod
    def _metric_known(cls, metric: Any) -> Any:
        if callable(metric):
            return metric
        if not isinstance(metric, str):
            raise ValueError(
                f"must be a metric name or 'module:function', not a {type(metric).__name__}"
            )
        if metric in BUILTIN_METRICS:
            return metric
        module, _, function = metric.partition(":")
        names = [*module.split("."), function]
        if not function or not all(n.isidentifier() for n in names):
            close = _close_metric(metric)
            hint = f"did you mean {close!r}? " if close else ""
            raise ValueError(
                f"unknown metric; {hint}use one of {', '.join(BUILTIN_METRICS)}, or your "
                "function as 'module:function' (e.g. 'my_metrics:f1')"
            )
        return metric

    @model_validator(mode="after")
    def _direction_given(self) -> ObjectiveConfig:
        builtin = self.metric in BUILTIN_METRICS if isinstance(self.metric, str) else False
        if not builtin and self.direction is None:
            raise ValueError(
                "objective.direction is required with your own metric: 'maximize' (higher is "
                "better, like accuracy) or 'minimize' (like an error rate)"
            )
        if builtin and self.direction not in (None, _builtin_direction(self.metric)):
            raise ValueError(
                f"objective.direction: {self.metric} is always "
                f"{_builtin_direction(self.metric)}d; leave direction out"
            )
        return self

    @property
    def goal(self) -> Literal["minimize", "maximize"]:
        """The metric's direction: fixed for a built-in metric, else ``direction``."""
        if self.direction is not None:
            return self.direction
        return _builtin_direction(self.metric)

    @property
    def metric_name(self) -> str:
        """The metric as stored and shown: its name, ``module:function``, or the callable's."""
        if callable(self.metric):
            return f"{self.metric.__module__}:{self.metric.__qualname__}"
        return str(self.metric)

    @property
    def search_dir(self) -> str | None:
        """The folder ``"module:function"`` is imported from first (the configuration's)."""
        return self._search_dir

    @property
    def is_text_metric(self) -> bool:
        """Scored on generated answers (anything but the validation loss)."""
        return self.metric != "eval_loss"

    @field_validator("seeds")
    @classmethod
    def _seeds_valid(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and seeds < 1:
            raise ValueError("needs at least one seed (three are recommended)")
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError("the seed list must be non-empty and without repeats")
        return seeds

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
    #: All three train the same way and are scored by hptune's validation alike.
    backend: Literal["accelerate", "trainer", "sft"] = "accelerate"
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
        from hptune.presets import DEVICE_NAMES

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
    def _trl_installed(cls, backend: str) -> str:
        import importlib.util

        if backend == "sft" and importlib.util.find_spec("trl") is None:
            raise ValueError(
                "the sft backend trains with TRL's SFTTrainer, which is not installed; "
                "pip install 'hptune[sft]' (or trl), or use backend: trainer"
            )
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
        if self.train_fn is not None and self.backend != "accelerate":
            raise ValueError(
                f"train_fn trains each run itself, so backend: {self.backend} would not be "
                "used: leave training.backend out"
            )
        return self

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
