"""The strict base of every configuration model, and the schedule names two sections share."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

#: transformers' schedulers that step with the optimizer (``get_scheduler`` names); those that
#: step on an evaluation metric are left out (hptune's runs evaluate per epoch themselves).
SchedulerName = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def redact_url(url: str) -> str:
    """Mask the password of a database URL (``user:pw@host`` or ``?password=pw``).

    Args:
        url: A storage URL.

    Returns:
        The URL with ``***`` in place of the password.
    """
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)
