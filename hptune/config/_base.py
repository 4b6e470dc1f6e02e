"""The strict base of every configuration model, and the schedule names two sections share."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SchedulerName = Literal["linear", "cosine", "constant_with_warmup"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
