"""hptune: systematic hyperparameter tuning for LLM fine-tuning, on Optuna.

``import hptune`` is light: pydantic, torch, transformers and optuna load on first use of a
name that needs them (``hptune.run``, ``hptune.load_config``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.exceptions import (
    BudgetSpent,
    ConfigError,
    DataError,
    ExperimentalWarning,
    HptuneDeprecationWarning,
    HptuneError,
    HptuneWarning,
    Interrupted,
    ModelError,
    NoStorageYet,
    StaleResultDropped,
    UnsupportedError,
)
from hptune.hparams import HParams
from hptune.seeds import SeedSummary, paired_difference, summarize

if TYPE_CHECKING:
    from hptune._api import PhaseStatus, run, run_phase, status, tune
    from hptune.config import TuneConfig, load_config
    from hptune.export import export
    from hptune.phases import (
        PHASES,
        BaselinePhase,
        BatchSizePhase,
        Decision,
        EpochsPhase,
        LearningRatePhase,
        Phase,
        RegularizationPhase,
        TestEvaluation,
        TrialOutcome,
    )
    from hptune.search import MemoryBoundedBatchSampler, PairedPruner, epoch_pruner
    from hptune.train.user import TrialRun

__version__ = "0.1.0"

__all__ = [
    "PHASES",
    "BaselinePhase",
    "BatchSizePhase",
    "BudgetSpent",
    "ConfigError",
    "DataError",
    "Decision",
    "EpochsPhase",
    "ExperimentalWarning",
    "HParams",
    "HptuneDeprecationWarning",
    "HptuneError",
    "HptuneWarning",
    "Interrupted",
    "LearningRatePhase",
    "MemoryBoundedBatchSampler",
    "ModelError",
    "NoStorageYet",
    "PairedPruner",
    "Phase",
    "PhaseStatus",
    "RegularizationPhase",
    "SeedSummary",
    "StaleResultDropped",
    "TestEvaluation",
    "TrialOutcome",
    "TrialRun",
    "TuneConfig",
    "UnsupportedError",
    "epoch_pruner",
    "export",
    "load_config",
    "paired_difference",
    "run",
    "run_phase",
    "status",
    "summarize",
    "tune",
]

_LAZY = {
    "PhaseStatus": "hptune._api",
    "run": "hptune._api",
    "run_phase": "hptune._api",
    "status": "hptune._api",
    "tune": "hptune._api",
    "TrialRun": "hptune.train.user",
    "TuneConfig": "hptune.config",
    "load_config": "hptune.config",
    "BaselinePhase": "hptune.phases",
    "BatchSizePhase": "hptune.phases",
    "Decision": "hptune.phases",
    "EpochsPhase": "hptune.phases",
    "LearningRatePhase": "hptune.phases",
    "Phase": "hptune.phases",
    "RegularizationPhase": "hptune.phases",
    "TestEvaluation": "hptune.phases",
    "PHASES": "hptune.phases",
    "TrialOutcome": "hptune.phases",
    "MemoryBoundedBatchSampler": "hptune.search",
    "PairedPruner": "hptune.search",
    "epoch_pruner": "hptune.search",
    "export": "hptune.export",
}


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hptune' has no attribute {name!r}")
