"""The whole tuning run (``TuneConfig``), its storage URL and its path checks."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from hptune.config._base import _Strict, redact_url
from hptune.config._data import DataConfig, folder_as_file
from hptune.config._errors import describe_errors
from hptune.config._objective import ObjectiveConfig
from hptune.config._passthrough import check_scheduler_kwargs
from hptune.config._phases import (
    BudgetConfig,
    DiagnosticsConfig,
    GuardrailsConfig,
    PhasesConfig,
)
from hptune.config._sections import MethodConfig, ModelConfig, TrainingConfig
from hptune.config._together import why_not_together
from hptune.demo import resolve_demo_path
from hptune.exceptions import ConfigError
from hptune.presets import SITUATIONS


class TuneConfig(_Strict):
    """A whole tuning run.

    Each key is explained in the configuration reference; the sections are models of their
    own (``ModelConfig``, ``DataConfig``, ...). Built from YAML by ``load_config``, from a
    dict by ``config_from_dict`` (both turn pydantic's errors into a ConfigError).

    Args:
        name: The run's name: its studies are ``<name>.<phase>`` in the storage.
        model: The base model (``model:``).
        method: LoRA, QLoRA or full fine-tuning; a string is the method's type.
        data: The splits and how examples are formatted (``data:``).
        objective: The metric, its direction and the seeds (``objective:``).
        training: The starting hyperparameters; unset values come from the presets.
        phases: Which phases run, and each one's options.
        guardrails: How the "never do" checks report (``guardrails:``).
        diagnostics: What is done about diagnosed curves (``diagnostics:``).
        budget: A compute budget the phases are fitted into (``budget:``); none by default.
        output_dir: Where checkpoints, logs, reports and the default SQLite storage go.
        storage: An Optuna storage URL; ``${NAME}`` is replaced by the environment variable.
        heartbeat_seconds: How often a running trial writes a heartbeat.
        stale_seconds: How long a heartbeat may stand still before the trial is failed as
            dead (default: 4 x heartbeat_seconds, at least 60).
        max_retries: How often a failed trial is run again before it stays failed.

    Raises:
        ConfigError: A value is invalid (an unknown key, a wrong type, an impossible value,
            an unset environment variable in ``storage``): one line per problem, with the fix.
    """

    #: The run's name: its studies are ``<name>.<phase>`` in the storage.
    name: str = "hptune"

    def __init__(self, **data: Any) -> None:
        # Built in Python, a mistake is told as config_from_dict and load_config tell it.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe_errors(exc, type(self))) from None

    model: ModelConfig
    method: MethodConfig = Field(default_factory=MethodConfig)
    data: DataConfig
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    phases: PhasesConfig = Field(default_factory=PhasesConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    #: A compute budget (GPU hours or seed-epochs) the phases are fitted into; none: each
    #: phase runs its configured size.
    budget: BudgetConfig | None = None
    #: Where checkpoints, logs, reports and the default SQLite storage go.
    output_dir: str = "hptune-output"
    #: An Optuna storage URL (``postgresql://...`` for many workers, ``journal://FILE``);
    #: default: SQLite in output_dir. A password in it is never printed. ``${NAME}`` is
    #: replaced by the environment variable NAME, to keep a password out of this file.
    storage: str | None = None
    #: A running trial writes a heartbeat this often (seconds).
    heartbeat_seconds: int = Field(20, ge=1)
    #: A running trial whose heartbeat has not changed for this long (its process was
    #: killed) is failed by another worker and run again. Default: 4 x heartbeat_seconds
    #: and at least 60 s, so that a slow epoch, evaluation or save on a loaded machine,
    #: which can hold a beat back for seconds, never looks like a dead worker.
    stale_seconds: int | None = Field(None, ge=2)
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
        if url.lower().startswith(("mysql", "mariadb")):
            raise ValueError(
                "MySQL and MariaDB are not supported (no lock or driver of theirs is tested); "
                "use postgresql://user@host/db for several machines, journal:///shared/run.log "
                "on a shared file system, or sqlite:///run.db for one worker"
            )
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

    @model_validator(mode="after")
    def _sections_fit_the_rest(self) -> TuneConfig:
        # e.g. the learning-rate grid not given: the method's.
        for section in self.phases.sections().values():
            section.fit_to(self)
        return self

    @model_validator(mode="after")
    def _stale_after_beats(self) -> TuneConfig:
        if self.stale_seconds is not None and self.stale_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                f"stale_seconds {self.stale_seconds} is less than two heartbeats "
                f"({self.heartbeat_seconds} s each): a live trial would be failed as dead. "
                f"Set stale_seconds to at least {2 * self.heartbeat_seconds}, or leave it out "
                "(4 x heartbeat_seconds, at least 60)"
            )
        return self

    @model_validator(mode="after")
    def _loraplus_where_hptune_builds_the_optimizer(self) -> TuneConfig:
        training = self.training
        if self.method.loraplus_lr_ratio is None:
            return self
        if training.train_fn or training.trainer_factory:
            raise ValueError(
                "method.loraplus_lr_ratio: hptune builds the LoRA+ optimizer in its own loop "
                "and Trainer backends; your own training builds its optimizer: use "
                "peft.optimizers.create_loraplus_optimizer there, and leave this key out"
            )
        if training.optim not in (None, "adamw_torch", "adamw_torch_fused"):
            raise ValueError(
                f"method.loraplus_lr_ratio: LoRA+ trains with AdamW, not training.optim "
                f"{training.optim!r}; leave training.optim out, or use adamw_torch"
            )
        return self

    @model_validator(mode="after")
    def _seeds_together_possible(self) -> TuneConfig:
        why = why_not_together(self.method, self.training)
        for key in ("seeds_together", "candidates_together"):
            if getattr(self.training, key) is True and why is not None:
                raise ValueError(
                    f"training.{key}: true, but this run's adapters cannot train together: "
                    f"{why}. Set it to auto (together wherever a run allows it), or leave it "
                    "out"
                )
        return self

    @model_validator(mode="after")
    def _running_phases_fit(self) -> TuneConfig:
        for section in self.phases.running_sections():
            section.check(self)
        return self

    @model_validator(mode="after")
    def _schedulers_have_their_kwargs(self) -> TuneConfig:
        schedulers: set[str] = {self.training.scheduler}
        for section in self.phases.running_sections():
            schedulers |= section.schedulers_tried()
        check_scheduler_kwargs(self.training.args, schedulers)
        return self

    @property
    def stale_after(self) -> float:
        """Seconds a running trial's heartbeat may stand still before it counts as dead."""
        if self.stale_seconds is not None:
            return float(self.stale_seconds)
        return float(max(STALE_AFTER_BEATS * self.heartbeat_seconds, STALE_FLOOR_SECONDS))

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

    def with_changes(self, changes: dict[str, Any]) -> TuneConfig:
        """A copy with dotted fields set (``{"phases.epochs.range": [2, 3]}``), each value
        validated; this configuration is left unchanged.

        Args:
            changes: Each dotted field's new value.

        Returns:
            The new configuration (only the sections changed are copied: ``data.dataset``
            may be a large object).
        """
        sections: dict[str, Any] = {}
        for dotted, value in changes.items():
            section, *path, name = dotted.split(".")
            if section not in sections:
                sections[section] = getattr(self, section).model_copy(deep=True)
            owner = sections[section]
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, name, value)  # validated: the models validate assignments
        return self.model_copy(update=sections)

    def study_name(self, phase: str) -> str:
        """The name of ``phase``'s study in the storage.

        Args:
            phase: A phase's name.

        Returns:
            ``<name>.<phase>``.
        """
        return f"{self.name}.{phase}"

    def check_paths(self) -> None:
        """Refuse missing data files and local model paths (building the demo if named).

        Raises:
            ConfigError: Every missing file and model path, one line each, with the fix.
        """
        problems = []
        for split in ("train", "validation", "test"):
            value = getattr(self.data, split)
            if value is None:
                continue
            path = Path(resolve_demo_path(value)).expanduser()
            if path.is_dir():
                problems.append(folder_as_file(split, path))
            elif not path.is_file():
                problems.append(
                    f"data.{split}: file {value!r} does not exist; fix the path "
                    "(relative paths are relative to the configuration file)"
                )
        model_path = self.model.path
        gguf = self.model.gguf_file
        if gguf is not None:
            resolved = Path(model_path).expanduser() / gguf
            if not resolved.is_file():
                problems.append(
                    f"model.gguf_file: {str(resolved)!r} does not exist; give the path of a "
                    ".gguf file as model.path (for SmolLM2-135M-Instruct, 'bash scripts/"
                    "get_smollm2.sh' puts one in the cache)"
                )
        elif _looks_local(model_path):
            resolved = Path(resolve_demo_path(model_path)).expanduser()
            if not (resolved / "config.json").is_file():
                what = "has no config.json" if resolved.is_dir() else "does not exist"
                problems.append(
                    f"model.path: {model_path!r} {what}; give a directory written by "
                    "save_pretrained, or a hub id such as 'org/model'"
                )
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


#: A heartbeat may stand still for this many intervals, and at least this many seconds,
#: before its trial counts as dead (``TuneConfig.stale_after``).
STALE_AFTER_BEATS = 4
STALE_FLOOR_SECONDS = 60
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _looks_local(path: str) -> bool:
    """A hub id is "name" or "org/name"; anything else is a local path: absolute, ``./``,
    ``../``, ``~``, something on disk, or a path whose first folder exists here."""
    candidate = Path(path).expanduser()
    if path.startswith(("demo://", ".", "/", "~")) or candidate.exists():
        return True
    if len(candidate.parts) > 1 and Path(candidate.parts[0]).is_dir():
        return True
    return not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", path)
