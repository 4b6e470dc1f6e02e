"""The hyperparameters of one training run, as a typed value that phases refine."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["HParams"]


@dataclass(frozen=True)
class HParams:
    """What one training run uses; every phase returns a copy with its decision applied.

    Args:
        learning_rate: The peak learning rate.
        batch_size: Examples per device and step.
        gradient_accumulation_steps: Steps whose gradients add up to one optimizer update.
        epochs: Passes over the training split.
        warmup_ratio: The share of the steps spent warming the learning rate up.
        weight_decay: AdamW's weight decay.
        scheduler: The learning-rate schedule: ``linear``, ``cosine`` or
            ``constant_with_warmup``.
        max_grad_norm: Gradients are clipped to this norm; None does not clip.
        lora_r: The LoRA rank of this run; None: the method's (``method.r``).
        lora_alpha: The LoRA alpha of this run; None: the method's (``method.alpha``).
        args: ``TrainingArguments`` values a phase searched (``phases.regularization.space``),
            over ``training.args``; given as a dict or as ``(key, value)`` pairs.

    Raises:
        ValueError: A learning rate that is not positive, or a batch size, accumulation or
            epoch count under 1.
    """

    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    epochs: int
    warmup_ratio: float
    weight_decay: float
    scheduler: str = "linear"
    max_grad_norm: float | None = 1.0
    lora_r: int | None = None
    lora_alpha: int | None = None
    args: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # Frozen: set once, as pairs sorted by key (hashable; equal whatever order they came in)
        pairs = self.args.items() if isinstance(self.args, dict) else self.args
        object.__setattr__(self, "args", tuple(sorted(((str(k), v) for k, v in pairs), key=_key)))
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate=}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1 or self.epochs < 1:
            raise ValueError(
                "batch_size, gradient_accumulation_steps and epochs must be at least 1, got "
                f"{self.batch_size=}, {self.gradient_accumulation_steps=}, {self.epochs=}"
            )
        if any(v is not None and v < 1 for v in (self.lora_r, self.lora_alpha)):
            raise ValueError(
                f"lora_r and lora_alpha must be at least 1, got {self.lora_r=}, {self.lora_alpha=}"
            )

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer update: the batch size times the gradient accumulation."""
        return self.batch_size * self.gradient_accumulation_steps

    @property
    def length_free(self) -> bool:
        """Whether the rate at a step does not depend on the run's length (a constant rate,
        no warmup ratio): a shorter run is then the first epochs of a longer one on the same
        seed, as the data order of an epoch depends only on the seed and the epoch."""
        return self.scheduler in ("constant", "constant_with_warmup") and self.warmup_ratio == 0

    def replace(self, **changes: Any) -> HParams:
        """A copy with some values changed.

        Args:
            **changes: New values, by field name.

        Returns:
            The new configuration (this one is frozen and stays as it is).

        Raises:
            TypeError: A name that is not a field.
            ValueError: A new value out of range (as for the constructor).
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, as stored on trials and studies.

        Returns:
            A JSON-serialisable dict that ``from_dict`` turns back into the configuration;
            the LoRA rank and alpha, and the searched ``args``, only when a phase set them
            (runs that never tune them store what they always stored).
        """
        values = dataclasses.asdict(self)
        for key in ("lora_r", "lora_alpha"):
            if values[key] is None:
                del values[key]
        values["args"] = dict(self.args)
        if not self.args:
            del values["args"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HParams:
        """The configuration that ``to_dict`` wrote.

        Args:
            values: The fields by name (those with a default may be left out).

        Returns:
            The configuration.

        Raises:
            TypeError: An unknown or missing field.
            ValueError: A value out of range (as for the constructor).
        """
        return cls(**values)


def _key(pair: tuple[str, Any]) -> str:
    return pair[0]
