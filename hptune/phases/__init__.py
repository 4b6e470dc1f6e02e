"""The phases of the method, each an Optuna study of its own.

A phase says what to try (its sampler, pruner and budget) and how to decide; the pipeline
runs it. :class:`TestEvaluation` follows the phases and measures the test split once.
"""

from hptune.phases._base import (
    DECISION_ATTR,
    Decision,
    Phase,
    TrialOutcome,
    grid_remaining,
    rank_within_noise,
)
from hptune.phases._baseline import BaselinePhase
from hptune.phases._batch_size import BatchSizePhase, batch_candidates
from hptune.phases._epochs import EpochsPhase, default_epoch_range
from hptune.phases._final import TestEvaluation
from hptune.phases._learning_rate import LearningRatePhase
from hptune.phases._regularization import RegularizationPhase

__all__ = [
    "DECISION_ATTR",
    "BaselinePhase",
    "BatchSizePhase",
    "Decision",
    "EpochsPhase",
    "LearningRatePhase",
    "Phase",
    "RegularizationPhase",
    "TestEvaluation",
    "TrialOutcome",
    "batch_candidates",
    "default_epoch_range",
    "grid_remaining",
    "rank_within_noise",
]
