"""The hyperparameters of one training run, as a typed value that phases refine."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["HParams"]


@dataclass(frozen=True)
class HParams:
    """What one training run uses; every phase returns a copy with its decision applied."""

    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    epochs: int
    warmup_ratio: float
    weight_decay: float
    scheduler: str = "linear"
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate=}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1 or self.epochs < 1:
            raise ValueError(
                "batch_size, gradient_accumulation_steps and epochs must be at least 1, got "
                f"{self.batch_size=}, {self.gradient_accumulation_steps=}, {self.epochs=}"
            )

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps

    def replace(self, **changes: Any) -> HParams:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HParams:
        return cls(**values)
