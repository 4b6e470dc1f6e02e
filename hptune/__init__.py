"""hptune: systematic hyperparameter tuning for LLM fine-tuning, on Optuna.

``import hptune`` is light: torch, transformers and optuna load only when a run needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune._api import PhaseStatus, run, status
from hptune.config import TuneConfig, load_config
from hptune.exceptions import ConfigError, DataError, HptuneError, ModelError, UnsupportedError
from hptune.hparams import HParams
from hptune.seeds import SeedSummary, paired_difference, summarize

if TYPE_CHECKING:
    from hptune.phases import BaselinePhase, Decision, LearningRatePhase, Phase

__version__ = "0.1.0"

__all__ = [
    "BaselinePhase",
    "ConfigError",
    "DataError",
    "Decision",
    "HParams",
    "HptuneError",
    "LearningRatePhase",
    "ModelError",
    "Phase",
    "PhaseStatus",
    "SeedSummary",
    "TuneConfig",
    "UnsupportedError",
    "load_config",
    "paired_difference",
    "run",
    "status",
    "summarize",
]

_LAZY = {"BaselinePhase", "Decision", "LearningRatePhase", "Phase"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from hptune import phases

        return getattr(phases, name)
    raise AttributeError(f"module 'hptune' has no attribute {name!r}")
