"""The whole configuration of a tuning run, validated, from YAML or from Python.

Everything a user can get wrong is refused here, before any storage is touched or any model
is loaded: unknown keys (with the nearest known key), wrong types, impossible values, missing
files and model paths. Values left unset are filled later from ``hptune.presets``.
"""

from typing import Any

from hptune.config._base import SchedulerName as SchedulerName
from hptune.config._data import SPLIT_ALIASES as SPLIT_ALIASES
from hptune.config._data import DataConfig
from hptune.config._data import template_fields as template_fields
from hptune.config._load import config_from_dict as config_from_dict
from hptune.config._load import format_validation_error as format_validation_error
from hptune.config._load import load_config
from hptune.config._objective import ObjectiveConfig
from hptune.config._phase_options import (
    BatchSizePhaseConfig,
    EpochsPhaseConfig,
    LearningRatePhaseConfig,
    LoraRankPhaseConfig,
    PhaseOptions,
    RegularizationPhaseConfig,
)
from hptune.config._phase_options import RateFactors as RateFactors
from hptune.config._phase_options import RegularizationCandidate as RegularizationCandidate
from hptune.config._phase_options import SearchRange as SearchRange
from hptune.config._phase_options import check_rate_factors as check_rate_factors
from hptune.config._phases import (
    BudgetConfig,
    DiagnosticsConfig,
    GuardrailCheck,
    GuardrailsConfig,
    PhasesConfig,
)
from hptune.config._registry import method_phase_names as method_phase_names
from hptune.config._registry import phase_names as phase_names
from hptune.config._registry import phase_section_models as phase_section_models
from hptune.config._registry import register_phase as register_phase
from hptune.config._registry import registered_phases as registered_phases
from hptune.config._registry import unregister_phase as unregister_phase
from hptune.config._sections import MethodConfig, ModelConfig, TrainingConfig
from hptune.config._tune import TuneConfig
from hptune.config._tune import redact_url as redact_url

# The same __all__ as before the split; the public names outside it are re-exported too (the
# "import X as X" above), so every name importable from hptune.config before still is.
__all__ = [
    "PHASE_NAMES",
    "BatchSizePhaseConfig",
    "BudgetConfig",
    "DataConfig",
    "DiagnosticsConfig",
    "EpochsPhaseConfig",
    "GuardrailCheck",
    "GuardrailsConfig",
    "LearningRatePhaseConfig",
    "LoraRankPhaseConfig",
    "MethodConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PhaseOptions",
    "PhasesConfig",
    "RegularizationPhaseConfig",
    "TrainingConfig",
    "TuneConfig",
    "load_config",
]


def __getattr__(name: str) -> Any:
    # PHASE_NAMES: the phases phases.run may name, read from the registry when asked (the
    # phases register themselves; a constant here would be a second list of them). Kept
    # for older callers: phase_names() is the function.
    if name == "PHASE_NAMES":
        return tuple(phase_names())
    raise AttributeError(f"module 'hptune.config' has no attribute {name!r}")
