"""Whether this process is one of several data-parallel ones, and process 0's values on all
(a leaf module: the loop and `hptune.train.distributed` need not import each other)."""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")


def is_data_parallel() -> bool:
    """Whether this process was launched as one of several (``accelerate launch``, torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def broadcast(value: T) -> T:
    """Process 0's ``value``, on every process (a no-op in a single process)."""
    if not is_data_parallel():
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def is_main_process() -> bool:
    """Whether this is process 0 (always, in a single process)."""
    return int(os.environ.get("RANK", "0")) == 0
