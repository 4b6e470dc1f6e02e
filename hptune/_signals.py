"""Ctrl-C and SIGTERM during a run: stop at the next safe point, not wherever the signal lands.

A signal that raised at once could land inside a storage commit and leave the trial RUNNING
(or the storage session broken). Instead the first SIGINT or SIGTERM is only recorded; the
training loop, the evaluation and the pipeline call `raise_if_interrupted` at points
where unwinding is safe (between steps, batches and trials). A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING

from hptune.exceptions import Interrupted

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["deferred_interrupts", "raise_if_interrupted"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: int | None = None


def raise_if_interrupted() -> None:
    """Raise `Interrupted` when a signal arrived since the run started."""
    if _received is not None:
        raise Interrupted(_received)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Record SIGINT/SIGTERM while the run lasts; restore the previous handlers after.

    Outside the main thread (where handlers cannot be set) nothing changes.
    """
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def record(signal_number: int, frame: object) -> None:
        global _received
        if _received is not None:  # asked twice: stop now
            raise Interrupted(signal_number)
        _received = signal_number

    previous = {number: signal.signal(number, record) for number in _SIGNALS}
    _received = None
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _received = None
