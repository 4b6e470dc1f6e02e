"""The phases of the method, each an Optuna study of its own.

A phase says what to try (its sampler, pruner and budget) and how to decide (a
``RankedPhase`` fills in the one decision template); the pipeline runs it.
``TestEvaluation`` follows the phases and measures the test split once. Each phase's class
registers itself (``register_phase``) when its module is imported here; ``PHASES`` names
them all, in order; ``make_phase`` builds one from a run's configuration.
"""

from hptune.config import register_phase, unregister_phase
from hptune.phases._accounting import grid_remaining
from hptune.phases._base import Decision, Phase, PhaseBudget, TrialOutcome
from hptune.phases._baseline import BaselinePhase
from hptune.phases._batch_size import BatchSizePhase, batch_candidates, memory_limit_bytes
from hptune.phases._cut import Cut
from hptune.phases._epochs import EpochsPhase, default_epoch_range
from hptune.phases._final import TestEvaluation
from hptune.phases._learning_rate import LearningRatePhase
from hptune.phases._lora_rank import LoraRankPhase
from hptune.phases._ranked import Choice, RankedPhase
from hptune.phases._ranking import (
    NoiseRanking,
    racing_trials_at_most,
    rank_within_noise,
)
from hptune.phases._registry import PHASES, make_phase
from hptune.phases._regularization import RegularizationPhase

__all__ = [
    "PHASES",
    "BaselinePhase",
    "BatchSizePhase",
    "Choice",
    "Cut",
    "Decision",
    "EpochsPhase",
    "LearningRatePhase",
    "LoraRankPhase",
    "NoiseRanking",
    "Phase",
    "PhaseBudget",
    "RankedPhase",
    "RegularizationPhase",
    "TestEvaluation",
    "TrialOutcome",
    "batch_candidates",
    "default_epoch_range",
    "grid_remaining",
    "make_phase",
    "memory_limit_bytes",
    "racing_trials_at_most",
    "rank_within_noise",
    "register_phase",
    "unregister_phase",
]
