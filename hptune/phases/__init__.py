"""The phases of the method, each an Optuna study of its own.

A phase says what to try (its sampler and budget) and how to decide; the pipeline runs it.
"""

from hptune.phases._base import DECISION_ATTR, Decision, Phase, TrialOutcome, rank_within_noise
from hptune.phases._baseline import BaselinePhase
from hptune.phases._learning_rate import LearningRatePhase

__all__ = [
    "DECISION_ATTR",
    "BaselinePhase",
    "Decision",
    "LearningRatePhase",
    "Phase",
    "TrialOutcome",
    "rank_within_noise",
]
