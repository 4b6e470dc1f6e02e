"""The batch sizes the batch phase considers, and the memory a step may use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hptune.train.target import resolve_target

if TYPE_CHECKING:
    from hptune.config import TuneConfig
    from hptune.hparams import HParams

__all__ = ["MIN_BATCH_TRIALS", "batch_candidates", "memory_limit_bytes"]


#: The largest batch the phase proposes by itself.
MAX_BATCH = 256
#: A batch above the incoming effective batch must leave this many optimizer steps per epoch:
#: warmup and the schedule need steps to act on.
MIN_STEPS_PER_EPOCH = 8
#: The fewest batch trials a budget's cut leaves.
MIN_BATCH_TRIALS = 2


def memory_limit_bytes(config: TuneConfig) -> float | None:
    """The memory a training step may use: configured, else the target's, else no limit.

    Args:
        config: The run's configuration (``phases.batch_size.memory_limit_gb``, then the
            target: ``training.gpu_memory_gb``, ``training.device``, this machine's GPU).

    Returns:
        Bytes, or None on a CPU with no configured limit.
    """
    gb = config.phases.batch_size.memory_limit_gb or resolve_target(config).memory_gb
    return None if gb is None else gb * 2**30


def batch_candidates(
    base: HParams,
    *,
    keep_effective_batch: bool,
    largest_fitting: int | None = None,
    n_train: int | None = None,
) -> list[int]:
    """Batch sizes worth trying from ``base``.

    Keeping the effective batch, the divisors of ``batch x accumulation`` (the accumulation
    makes up the rest); and, when the memory model says a larger batch fits, the powers of
    two above it up to the largest that fits, and that largest itself: these train with no
    accumulation, so the effective batch grows with them. A batch above the effective batch
    is at most ``MAX_BATCH`` and leaves ``MIN_STEPS_PER_EPOCH`` optimizer steps per epoch.
    Not keeping it: powers of two up to ``MAX_BATCH``.

    Args:
        base: The configuration the phase starts from.
        keep_effective_batch: Keep ``base``'s effective batch (batch x accumulation).
        largest_fitting: The largest batch the memory model says fits; None: unknown.
        n_train: Training examples (for the steps per epoch); None: no bound.

    Returns:
        Batch sizes, smallest first.
    """
    if not keep_effective_batch:
        return [2**k for k in range(9)]
    effective = base.effective_batch_size
    candidates = {b for b in range(1, effective + 1) if effective % b == 0}
    if largest_fitting is not None and largest_fitting > effective:
        cap = min(MAX_BATCH, (n_train or MAX_BATCH * MIN_STEPS_PER_EPOCH) // MIN_STEPS_PER_EPOCH)
        top = min(largest_fitting, cap)
        candidates |= {2**k for k in range(top.bit_length()) if effective < 2**k <= top}
        if top == largest_fitting:  # memory, not the caps, bounds it: try the exact largest
            candidates.add(top)
    return sorted(candidates)
