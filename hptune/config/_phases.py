"""The phases to run and their options; the guardrails, diagnostics and budget sections.

A phase's options are its own model (a ``PhaseOptions``), named by the phase class
(``options_model``); ``PhasesConfig`` validates the section of every registered phase with
it (``hptune.config._registry``), so a phase is added without a change here.
"""

# Pydantic copies a field's mutable default for each instance; ruff knows that only of models
# whose pydantic base is in the same file, and _Strict is in another.
# ruff: noqa: RUF012

from __future__ import annotations

import difflib
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from hptune.config._base import _Strict
from hptune.config._phase_options import (
    BatchSizePhaseConfig,
    EpochsPhaseConfig,
    LearningRatePhaseConfig,
    PhaseOptions,
    RegularizationPhaseConfig,
)
from hptune.config._registry import method_phase_names, phase_names, phase_section_models

SectionT = TypeVar("SectionT", bound="PhaseOptions")


class PhasesConfig(_Strict):
    """Which phases run, in the method's order, and their options: a section for each
    registered phase with options (``phases.learning_rate``, ``phases.lora_rank``, ...)."""

    # A phase's section is not a field here: each registered phase brings its own model
    # (hptune.config._registry), read by _sections_of_the_phases when a configuration is
    # validated; the sections are kept as pydantic's extra values.
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    #: The phases to run, put in the method's order (default: the method's five; the LoRA
    #: rank phase, ``lora_rank``, runs after them when listed).
    run: list[str] = Field(default_factory=method_phase_names)
    #: After the phases, train the chosen configuration on the seeds and evaluate it once on
    #: the test split (when data.test is given); never used for any decision.
    test_evaluation: bool = True

    @field_validator("run")
    @classmethod
    def _in_order(cls, run: list[str]) -> list[str]:
        if not run or len(set(run)) != len(run):
            raise ValueError("list each phase at most once, and at least one")
        names = phase_names()
        unknown = [name for name in run if name not in names]
        if unknown:
            raise ValueError(f"unknown phase {unknown[0]!r}; use one of {', '.join(names)}")
        return sorted(run, key=names.index)

    @model_validator(mode="before")
    @classmethod
    def _sections_of_the_phases(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        models = phase_section_models()
        errors: list[InitErrorDetails] = []
        for key, value in values.items():
            if key not in cls.model_fields and key not in models:
                errors.append(_unknown_key(key, value, [*cls.model_fields, *models]))
        sections: dict[str, Any] = {}
        for name, model in models.items():
            try:
                sections[name] = model.model_validate(values.get(name, {}))
            except ValidationError as exc:
                errors += [_within(name, error, model) for error in exc.errors()]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return {**{k: v for k, v in values.items() if k in cls.model_fields}, **sections}

    def sections(self) -> dict[str, PhaseOptions]:
        """Every registered phase's section, by the phase's name, in the order they run.

        Returns:
            The sections (the configuration's own objects, not copies).
        """
        return dict(self.__pydantic_extra__ or {})

    def running_sections(self) -> list[PhaseOptions]:
        """The sections of the phases that run (``run``), in the order they run.

        Returns:
            The sections.
        """
        sections = self.sections()
        return [sections[name] for name in self.run if name in sections]

    def section(self, name: str, model: type[SectionT]) -> SectionT:
        """A phase's section, typed: ``config.phases.section("lora_rank", LoraRankPhaseConfig)``.

        Args:
            name: The phase's name.
            model: Its options model.

        Returns:
            The section.

        Raises:
            KeyError: No registered phase of that name has a section.
            TypeError: The section is not a ``model``.
        """
        section = self.sections()[name]
        if not isinstance(section, model):
            raise TypeError(f"phases.{name} is a {type(section).__name__}, not a {model.__name__}")
        return section

    # Typed access to the method's own sections (any other: ``section``).
    @property
    def learning_rate(self) -> LearningRatePhaseConfig:
        """The learning-rate phase's options."""
        return self.section("learning_rate", LearningRatePhaseConfig)

    @property
    def batch_size(self) -> BatchSizePhaseConfig:
        """The batch-size phase's options."""
        return self.section("batch_size", BatchSizePhaseConfig)

    @property
    def epochs(self) -> EpochsPhaseConfig:
        """The epochs phase's options."""
        return self.section("epochs", EpochsPhaseConfig)

    @property
    def regularization(self) -> RegularizationPhaseConfig:
        """The weight decay / scheduler / warmup phase's options."""
        return self.section("regularization", RegularizationPhaseConfig)


def _unknown_key(key: str, value: Any, known: list[str]) -> InitErrorDetails:
    """An unknown key under ``phases:`` (or in a phase's section), told as an unknown key of
    any other section is (``hptune.config._errors``), with the nearest known key."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    message = f"unknown key; {hint}known keys here: {', '.join(sorted(known))}"
    return {"type": PydanticCustomError("unknown_key", message), "loc": (key,), "input": value}


def _within(name: str, error: Any, model: type[BaseModel]) -> InitErrorDetails:
    """An error of the section ``name``, located under it."""
    loc = (name, *error["loc"])
    if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
        unknown = _unknown_key(str(error["loc"][0]), error["input"], list(model.model_fields))
        return {**unknown, "loc": loc}
    details: InitErrorDetails = {"type": error["type"], "loc": loc, "input": error["input"]}
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


#: The "never do" checks by name, in the order they run: what guardrails.ignore takes, and
#: what hptune.guardrails checks (its CHECKS).
GuardrailCheck = Literal[
    "high_learning_rate",
    "no_warmup",
    "single_seed",
    "two_seeds",
    "test_overlaps_validation",
    "validation_is_training",
    "trust_remote_code",
    "short_bleu_references",
    "batch_over_memory",
]


class GuardrailsConfig(_Strict):
    """The "never do" checks made before training (see `hptune.guardrails`)."""

    #: Refuse the run on any finding instead of warning.
    strict: bool = False
    #: Checks to skip, by name (e.g. high_learning_rate for a tiny model).
    ignore: list[GuardrailCheck] = []


class DiagnosticsConfig(_Strict):
    """What hptune does with a diagnosis during a run."""

    #: Run a diverged trial once more as a new trial with the guide's remedy (learning rate
    #: / 10, gradient clipping at 1.0), tagged with what it fixes. Not in the learning-rate
    #: phase, where the lower rates of the grid are the remedy.
    retry_diverged: bool = False


class BudgetConfig(_Strict):
    """A compute budget for the whole run: GPU hours or seed-epochs, one of the two."""

    #: GPU hours all trials may train for (every seed of every trial, all workers and data-
    #: parallel GPUs together). Planned with ``examples_per_second`` (or an estimate from
    #: the target GPU's speed); during the run the measured throughput replaces it.
    gpu_hours: float | None = Field(None, gt=0)
    #: Epochs all trials may train, one seed's epoch at a time (what ``hptune plan`` counts).
    seed_epochs: int | None = Field(None, gt=0)
    #: Training examples per second on one GPU of the target, to turn ``gpu_hours`` into
    #: epochs before the run has measured it (e.g. the examples/s per GPU a report of an
    #: earlier run shows).
    examples_per_second: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_budget(self) -> BudgetConfig:
        if (self.gpu_hours is None) == (self.seed_epochs is None):
            raise ValueError(
                "give the budget as gpu_hours or as seed_epochs (one of the two), e.g. "
                "budget: {gpu_hours: 10}"
            )
        return self
