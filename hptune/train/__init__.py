"""Training: data, model, the backends that train a run, and validation metrics.

Importing this package pulls in torch and transformers; ``import hptune`` does not.
"""

from hptune.train.backends import make_runner
from hptune.train.loop import EpochMetrics, Runner, RunResult
from hptune.train.runner import RunnerBase
from hptune.train.user import TrialRun

__all__ = ["EpochMetrics", "RunResult", "Runner", "RunnerBase", "TrialRun", "make_runner"]
