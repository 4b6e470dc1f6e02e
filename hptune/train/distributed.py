"""Data-parallel trials: ``accelerate launch -m hptune run CONFIG`` trains every trial on all
the launched processes (one per GPU; or CPU processes over gloo).

Process 0 is the leader: it alone runs the pipeline and talks to the storage (samplers,
pruners, queue, decisions). Before each training run it broadcasts what to train (the
configuration, the seed); after each epoch it broadcasts whether to go on (pruning and early
stopping are decided on its side). The other processes follow: they build the same data, train
what they are told in lockstep, and never open the storage, so no process samples parameters
of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hptune.train._parallel import broadcast, is_data_parallel
from hptune.train.backends import make_runner

if TYPE_CHECKING:
    from hptune.config import TuneConfig
    from hptune.train.runner import RunnerBase

__all__ = ["broadcast", "is_data_parallel", "run_data_parallel"]

T = TypeVar("T")


def run_data_parallel(
    config: TuneConfig, body: Callable[[RunnerBase], T], runner: RunnerBase | None = None
) -> T:
    """Run ``body`` (the pipeline) on the leader; make every other process follow it.

    Every process returns the leader's result (None on followers when the leader failed).
    """
    import torch
    from accelerate import PartialState

    # Joins the process group: NCCL on GPUs; gloo on CPUs (where `cpu` must be said).
    state = PartialState(cpu=not torch.cuda.is_available())
    try:
        runner = runner or make_runner(config)
        if not state.is_main_process:
            followed: T = _follow(runner)
            return followed
        runner.leader = True
        result: T | None = None
        try:
            result = body(runner)
        finally:
            broadcast(("stop", result))  # also when the leader fails: nobody waits for ever
        return result
    finally:
        # Every process leaves together and closes the group: a process exiting while a peer
        # still holds its gloo connections aborted the peer at exit ("terminate called without
        # an active exception", seen in CI once in a few runs).
        state.wait_for_everyone()
        state.destroy_process_group()


def _follow(runner: RunnerBase) -> Any:
    while True:
        command: Any = broadcast(None)
        if command[0] == "stop":
            return command[1]
        _, hp, seed, options = command
        runner.train(hp, seed, None, **options)
