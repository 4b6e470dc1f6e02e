"""hptune: systematic hyperparameter tuning for LLM fine-tuning, on Optuna.

``import hptune`` is light: pydantic, torch, transformers and optuna load on first use of a
name that needs them (``hptune.run``, ``hptune.load_config``, ...).
"""

from __future__ import annotations

import importlib
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
    from hptune._export import export
    from hptune.config import TuneConfig, load_config
    from hptune.diagnose import diagnose as diagnose_trials
    from hptune.phases import (
        PHASES,
        BaselinePhase,
        BatchSizePhase,
        Decision,
        EpochsPhase,
        LearningRatePhase,
        LoraRankPhase,
        Phase,
        RegularizationPhase,
        TestEvaluation,
        TrialOutcome,
    )
    from hptune.plan import Plan, make_plan
    from hptune.report import write_report
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
    "LoraRankPhase",
    "MemoryBoundedBatchSampler",
    "ModelError",
    "NoStorageYet",
    "PairedPruner",
    "Phase",
    "PhaseStatus",
    "Plan",
    "RegularizationPhase",
    "SeedSummary",
    "StaleResultDropped",
    "TestEvaluation",
    "TrialOutcome",
    "TrialRun",
    "TuneConfig",
    "UnsupportedError",
    "diagnose_trials",
    "epoch_pruner",
    "export",
    "load_config",
    "make_plan",
    "paired_difference",
    "run",
    "run_phase",
    "status",
    "summarize",
    "tune",
    "write_report",
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
    "Decision": "hptune.phases",
    "Phase": "hptune.phases",
    "PHASES": "hptune.phases",
    "TrialOutcome": "hptune.phases",
    "MemoryBoundedBatchSampler": "hptune.search",
    "PairedPruner": "hptune.search",
    "epoch_pruner": "hptune.search",
    "export": "hptune._export",
    # Under names no submodule has (hptune.plan, hptune.report and hptune.diagnose are
    # modules: importing one would replace a function of its name on the package).
    "make_plan": "hptune.plan",
    "Plan": "hptune.plan",
    "write_report": "hptune.report",
    "diagnose_trials": "hptune.diagnose",
}
#: Names on the package whose function has another name in its module.
_RENAMED = {"diagnose_trials": "diagnose"}


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), _RENAMED.get(name, name))
    if name.endswith(("Phase", "Evaluation")):  # a phase class, read from the registry
        phases = importlib.import_module("hptune.phases").PHASES
        found = [phase for phase in phases.values() if phase.__name__ == name]
        if found:
            return found[0]
    raise AttributeError(f"module 'hptune' has no attribute {name!r}")
