"""Training: data, model, the Accelerate loop and validation metrics.

Importing this package pulls in torch and transformers; ``import hptune`` does not.
"""

from hptune.train.loop import EpochMetrics, Runner, RunResult

__all__ = ["EpochMetrics", "RunResult", "Runner"]
