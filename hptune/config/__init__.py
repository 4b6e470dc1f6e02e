"""The whole configuration of a tuning run, validated, from YAML or from Python.

Everything a user can get wrong is refused here, before any storage is touched or any model
is loaded: unknown keys (with the nearest known key), wrong types, impossible values, missing
files and model paths. Values left unset are filled later from ``hptune.presets``.
"""

from hptune.config._base import SchedulerName as SchedulerName
from hptune.config._data import SPLIT_ALIASES as SPLIT_ALIASES
from hptune.config._data import DataConfig
from hptune.config._data import template_fields as template_fields
from hptune.config._load import config_from_dict as config_from_dict
from hptune.config._load import format_validation_error as format_validation_error
from hptune.config._load import load_config
from hptune.config._phases import (
    PHASE_NAMES,
    BatchSizePhaseConfig,
    BudgetConfig,
    DiagnosticsConfig,
    EpochsPhaseConfig,
    GuardrailsConfig,
    LearningRatePhaseConfig,
    LoraRankPhaseConfig,
    PhasesConfig,
    RegularizationPhaseConfig,
)
from hptune.config._phases import PhaseName as PhaseName
from hptune.config._sections import (
    MethodConfig,
    ModelConfig,
    ObjectiveConfig,
    TrainingConfig,
)
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
    "GuardrailsConfig",
    "LearningRatePhaseConfig",
    "LoraRankPhaseConfig",
    "MethodConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PhasesConfig",
    "RegularizationPhaseConfig",
    "TrainingConfig",
    "TuneConfig",
    "load_config",
]
