"""Search strategies that work in any Optuna study, hptune's or a user's own.

* ``MemoryBoundedBatchSampler`` proposes only batch sizes that a memory model says will
  fit, largest first, and never again one at or above a batch that ran out of memory.
* ``record_out_of_memory`` marks a trial as out of memory, which the sampler reads back
  from the storage (so every worker on the storage learns the boundary).
* ``epoch_pruner`` is the median pruner hptune uses on the per-epoch seed mean.
"""

from hptune.search._memory_bounded import (
    OOM_STATUS,
    MemoryBoundedBatchSampler,
    oom_boundary,
    record_out_of_memory,
)
from hptune.search._pruners import epoch_pruner

__all__ = [
    "OOM_STATUS",
    "MemoryBoundedBatchSampler",
    "epoch_pruner",
    "oom_boundary",
    "record_out_of_memory",
]
