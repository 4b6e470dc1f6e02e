"""Search strategies that work in any Optuna study, hptune's or a user's own.

* ``MemoryBoundedBatchSampler`` proposes only batch sizes that a memory model says will
  fit, largest first, and never again one at or above a batch that ran out of memory.
* ``record_out_of_memory`` marks a trial as out of memory, which the sampler reads back
  from the storage (so every worker on the storage learns the boundary).
* ``PairedPruner`` stops a trial behind the earlier trials on the same seeds at the same
  epoch (``report_seed_epoch`` records the curves it compares); ``epoch_pruner`` is the one
  hptune's phases use.
"""

from hptune._trial_state import report_seed_epoch, seed_curves
from hptune.search._memory_bounded import (
    MemoryBoundedBatchSampler,
    oom_boundary,
    record_out_of_memory,
)
from hptune.search._pruners import PairedPruner, epoch_pruner

__all__ = [
    "MemoryBoundedBatchSampler",
    "PairedPruner",
    "epoch_pruner",
    "oom_boundary",
    "record_out_of_memory",
    "report_seed_epoch",
    "seed_curves",
]
