"""The whole configuration of a tuning run, validated, from YAML or from Python.

Everything a user can get wrong is refused here, before any storage is touched or any model
is loaded: unknown keys (with the nearest known key), wrong types, impossible values, missing
files and model paths. Values left unset are filled later from :mod:`hptune.presets`.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hptune.exceptions import ConfigError
from hptune.presets import DEFAULT_LEARNING_RATE_GRID, SITUATIONS

__all__ = [
    "PHASE_NAMES",
    "BatchSizePhaseConfig",
    "DataConfig",
    "DiagnosticsConfig",
    "EpochsPhaseConfig",
    "GuardrailsConfig",
    "LearningRatePhaseConfig",
    "MethodConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PhasesConfig",
    "RegularizationPhaseConfig",
    "TrainingConfig",
    "TuneConfig",
    "load_config",
]

#: The phases of the method, in order.
PHASE_NAMES = ("baseline", "learning_rate", "batch_size", "epochs", "regularization")
PhaseName = Literal["baseline", "learning_rate", "batch_size", "epochs", "regularization"]
SchedulerName = Literal["linear", "cosine", "constant_with_warmup"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


class LearningRatePhaseConfig(_Strict):
    """Options of the learning-rate phase."""

    #: The learning rates tried, each on every seed (default: the method's grid).
    grid: list[float] = list(DEFAULT_LEARNING_RATE_GRID)
    #: Among rates within seed noise of the best: the lowest (safer) or the best mean.
    tie_break: Literal["lowest", "best_mean"] = "lowest"

    @field_validator("grid")
    @classmethod
    def _grid_valid(cls, grid: list[float]) -> list[float]:
        if len(grid) < 2:
            raise ValueError("the learning-rate grid needs at least two values")
        if any(not 0 < lr < 1 for lr in grid):
            raise ValueError("every learning rate must be between 0 and 1 (exclusive)")
        if len(set(grid)) != len(grid):
            raise ValueError("the learning-rate grid has a repeated value")
        return sorted(grid)


class BatchSizePhaseConfig(_Strict):
    """Options of the batch-size phase."""

    #: Batch sizes to train (largest that fits first, then smaller ones).
    n_trials: int = Field(3, gt=0)
    #: The memory a training step may use; default: training.gpu_memory_gb, else the GPU's
    #: own memory, else (CPU) no limit.
    memory_limit_gb: float | None = Field(None, gt=0)
    #: The share of the limit a predicted step may use.
    safety_margin: float = Field(0.9, gt=0, le=1)
    #: Keep batch x gradient accumulation equal to the decided effective batch (the batch
    #: then only changes speed); false keeps the accumulation and lets the effective batch grow.
    keep_effective_batch: bool = True
    #: Batch sizes to consider; default: divisors of the effective batch (kept) or powers of
    #: two up to 256.
    candidates: list[int] | None = None
    #: On a GPU, measure two small batches to calibrate the memory model.
    probe: bool = True

    @field_validator("candidates")
    @classmethod
    def _candidates_valid(cls, candidates: list[int] | None) -> list[int] | None:
        if candidates is not None and (not candidates or min(candidates) < 1):
            raise ValueError("give one or more positive batch sizes")
        return None if candidates is None else sorted(set(candidates))


class EpochsPhaseConfig(_Strict):
    """Options of the epochs phase."""

    #: [fewest, most] epochs to try; default: the presets' range for the training-set size,
    #: widened to at least three values.
    range: tuple[int, int] | None = None
    #: Stop hopeless trials early with a median pruner.
    pruning: bool = True

    @field_validator("range")
    @classmethod
    def _range_valid(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] < value[1]:
            raise ValueError("give [fewest, most] epochs with 1 <= fewest < most")
        return value


class RegularizationPhaseConfig(_Strict):
    """Options of the weight decay / scheduler / warmup phase."""

    #: Trials of the joint search (the first is the incoming configuration).
    n_trials: int = Field(8, ge=2)
    #: The weight-decay range [low, high], searched on a log scale.
    weight_decay: tuple[float, float] = (0.01, 0.1)
    #: The warmup-ratio range [low, high].
    warmup_ratio: tuple[float, float] = (0.05, 0.10)
    #: The schedules tried.
    schedulers: list[SchedulerName] = ["linear", "cosine", "constant_with_warmup"]
    #: Stop trials whose seed-mean curve falls behind the median of earlier trials.
    pruning: bool = True
    #: The seed of the phase's TPE sampler: the same seed proposes the same trials; another
    #: repeats the search with other proposals.
    sampler_seed: int = Field(0, ge=0)

    @field_validator("weight_decay", "warmup_ratio")
    @classmethod
    def _range_valid(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] < value[1] < 1:
            raise ValueError("give [low, high] with 0 < low < high < 1")
        return value

    @field_validator("schedulers")
    @classmethod
    def _schedulers_valid(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("give one or more schedulers, without repeats")
        return value


class PhasesConfig(_Strict):
    """Which phases run, in the method's order, and their options."""

    #: The phases to run, put in the method's order.
    run: list[PhaseName] = list(PHASE_NAMES)  # type: ignore[arg-type]
    learning_rate: LearningRatePhaseConfig = Field(default_factory=LearningRatePhaseConfig)
    batch_size: BatchSizePhaseConfig = Field(default_factory=BatchSizePhaseConfig)
    epochs: EpochsPhaseConfig = Field(default_factory=EpochsPhaseConfig)
    regularization: RegularizationPhaseConfig = Field(default_factory=RegularizationPhaseConfig)
    #: After the phases, train the chosen configuration on the seeds and evaluate it once on
    #: the test split (when data.test is given); never used for any decision.
    test_evaluation: bool = True

    @field_validator("run")
    @classmethod
    def _in_order(cls, run: list[str]) -> list[str]:
        if not run or len(set(run)) != len(run):
            raise ValueError("list each phase at most once, and at least one")
        return sorted(run, key=PHASE_NAMES.index)


class GuardrailsConfig(_Strict):
    """The "never do" checks made before training (see :mod:`hptune.guardrails`)."""

    #: Refuse the run on any finding instead of warning.
    strict: bool = False
    #: Checks to skip, by name (e.g. high_learning_rate for a tiny model).
    ignore: list[
        Literal[
            "high_learning_rate",
            "no_warmup",
            "single_seed",
            "test_overlaps_validation",
            "validation_is_training",
            "trust_remote_code",
        ]
    ] = []


class DiagnosticsConfig(_Strict):
    """What hptune does with a diagnosis during a run."""

    #: Run a diverged trial once more as a new trial with the guide's remedy (learning rate
    #: / 10, gradient clipping at 1.0), tagged with what it fixes. Not in the learning-rate
    #: phase, where the lower rates of the grid are the remedy.
    retry_diverged: bool = False


class TuneConfig(_Strict):
    """A whole tuning run."""

    #: The run's name: its studies are ``<name>.<phase>`` in the storage.
    name: str = "hptune"
    model: ModelConfig
    method: MethodConfig = Field(default_factory=MethodConfig)
    data: DataConfig
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    phases: PhasesConfig = Field(default_factory=PhasesConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    #: Where checkpoints, logs, reports and the default SQLite storage go.
    output_dir: str = "hptune-output"
    #: An Optuna storage URL (``postgresql://...`` for many workers, ``journal://FILE``);
    #: default: SQLite in output_dir. A password in it is never printed. ``${NAME}`` is
    #: replaced by the environment variable NAME, to keep a password out of this file.
    storage: str | None = None
    #: A running trial writes a heartbeat this often (seconds); a trial whose heartbeat is
    #: older than twice that (its process was killed) is failed and run again.
    heartbeat_seconds: int = Field(20, ge=1)
    #: How often a failed trial is run again before it stays failed.
    max_retries: int = Field(2, ge=0)

    @field_validator("name")
    @classmethod
    def _name_valid(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise ValueError("use letters, digits, '-' and '_' only (it prefixes study names)")
        return name

    @field_validator("storage")
    @classmethod
    def _storage_from_environment(cls, url: str | None) -> str | None:
        if url is None:
            return None
        missing = [name for name in _ENV_REFERENCE.findall(url) if name not in os.environ]
        if missing:
            raise ValueError(
                f"the environment variable {missing[0]} is not set; export it first (for "
                f"example export {missing[0]}='postgresql://user:password@host/db'), or "
                "write the URL here"
            )
        return _ENV_REFERENCE.sub(lambda match: os.environ[match.group(1)], url)

    @field_validator("method", mode="before")
    @classmethod
    def _method_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _method_from_situation(cls, values: Any) -> Any:
        # A situation preset implies its method unless the user chose one.
        if isinstance(values, dict) and "method" not in values:
            training = values.get("training")
            situation = training.get("situation") if isinstance(training, dict) else None
            if situation in SITUATIONS:
                values = {**values, "method": {"type": SITUATIONS[situation].method}}
        return values

    @property
    def storage_url(self) -> str:
        """The Optuna storage URL; by default an SQLite file in the output directory."""
        if self.storage:
            return self.storage
        return f"sqlite:///{Path(self.output_dir).resolve() / 'hptune.db'}"

    @property
    def storage_display(self) -> str:
        """The storage URL with any password masked, for messages and logs."""
        return redact_url(self.storage_url)

    def study_name(self, phase: str) -> str:
        return f"{self.name}.{phase}"

    def check_paths(self) -> None:
        """Refuse missing data files and local model paths (building the demo if named)."""
        from hptune.demo import resolve_demo_path

        problems = []
        for split in ("train", "validation", "test"):
            value = getattr(self.data, split)
            if value is None:
                continue
            path = Path(resolve_demo_path(value)).expanduser()
            if not path.is_file():
                problems.append(
                    f"data.{split}: file {value!r} does not exist; fix the path "
                    "(relative paths are relative to the configuration file)"
                )
        model_path = self.model.path
        if _looks_local(model_path):
            resolved = Path(resolve_demo_path(model_path)).expanduser()
            if not (resolved / "config.json").is_file():
                what = "has no config.json" if resolved.is_dir() else "does not exist"
                problems.append(
                    f"model.path: {model_path!r} {what}; give a directory written by "
                    "save_pretrained, or a hub id such as 'org/model'"
                )
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def redact_url(url: str) -> str:
    """Mask the password of a database URL (``user:pw@host`` or ``?password=pw``)."""
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)


def _looks_local(path: str) -> bool:
    # A hub id is "name" or "org/name"; anything else (or anything on disk) is a local path.
    if path.startswith("demo://") or Path(path).expanduser().exists():
        return True
    return not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", path) or path.startswith(".")


def load_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> TuneConfig:
    """Read and validate a YAML configuration file.

    Relative data and model paths are taken relative to the file's directory, so a
    configuration runs the same from any working directory.

    Raises:
        ConfigError: the file is missing or malformed, or a value is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path} is not valid YAML: {exc}. Fix the indentation or quoting at that line."
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of keys (model:, data:, ...), got {type(raw).__name__}"
        )
    config = config_from_dict(raw, base_dir=path.parent)
    if check_paths:
        config.check_paths()
    return config


def config_from_dict(raw: dict[str, Any], *, base_dir: Path | None = None) -> TuneConfig:
    """Validate a configuration given as a dict, turning pydantic's errors into a ConfigError."""
    raw = _relative_to(raw, base_dir) if base_dir is not None else raw
    try:
        return TuneConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def _relative_to(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    raw = dict(raw)

    def fix(value: Any, *, only_if_exists: bool = False) -> Any:
        if not isinstance(value, str) or not value or value.startswith("demo://"):
            return value
        candidate = Path(value).expanduser()
        if candidate.is_absolute() or (only_if_exists and not (base_dir / candidate).exists()):
            return value
        return str(base_dir / candidate)

    if isinstance(raw.get("data"), dict):
        raw["data"] = {
            k: fix(v) if k in ("train", "validation", "test") else v for k, v in raw["data"].items()
        }
    if isinstance(raw.get("model"), dict) and "path" in raw["model"]:
        # A hub id ("org/model") stays as it is unless such a directory exists beside the file.
        raw["model"] = {**raw["model"], "path": fix(raw["model"]["path"], only_if_exists=True)}
    if isinstance(raw.get("output_dir"), str) and not Path(raw["output_dir"]).is_absolute():
        raw["output_dir"] = str(base_dir / raw["output_dir"])
    return raw


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: the key, what is wrong, and how to fix it."""
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(_unknown_key_message(error["loc"]))
        elif error["type"] == "missing":
            lines.append(f"{location}: required key is missing; add it")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{location}: {message} (got {error.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _unknown_key_message(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = TuneConfig
    for part in loc[:-1]:  # walk down to the model that holds the unknown key
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    known = sorted(model.model_fields)
    where = ".".join(str(p) for p in loc)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{where}: unknown key; {hint}known keys here: {', '.join(known)}"
