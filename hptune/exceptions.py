"""hptune's small exception and warning tree.

Every error a user can cause derives from ``HptuneError``; the command prints its
message (one paragraph naming the problem and the fix) and exits non-zero without a traceback.
Every warning hptune emits derives from ``HptuneWarning``, so that one filter
(``warnings.filterwarnings("ignore", category=hptune.HptuneWarning)``) silences them all.
"""

from __future__ import annotations

import signal

__all__ = [
    "BudgetSpent",
    "ConfigError",
    "DataError",
    "ExperimentalWarning",
    "HptuneDeprecationWarning",
    "HptuneError",
    "HptuneWarning",
    "Interrupted",
    "ModelError",
    "NoStorageYet",
    "StaleResultDropped",
    "UnsupportedError",
]


class HptuneError(Exception):
    """Base class of hptune's errors."""


class HptuneWarning(UserWarning):
    """Base class of hptune's warnings."""


class ExperimentalWarning(HptuneWarning):
    """A feature marked experimental was used: its interface or behaviour may change in the
    next release without a deprecation period (filter it by this category)."""


class HptuneDeprecationWarning(HptuneWarning, FutureWarning):
    """A name or option of hptune that is going away: the message names what replaces it."""


class StaleResultDropped(HptuneWarning):
    """Another worker failed this worker's trial as stale: its result is dropped and the
    trial runs again (on a loaded machine, raise ``stale_seconds``)."""


class ConfigError(HptuneError):
    """The configuration is invalid: an unknown key, a wrong type or an impossible value."""


class NoStorageYet(ConfigError):
    """A reading command (status, report, export, diagnose) found no storage: nothing ran yet."""


class DataError(HptuneError):
    """A data file is missing, empty or malformed."""


class ModelError(HptuneError):
    """The model cannot be found or loaded."""


class UnsupportedError(HptuneError):
    """The configuration asks for something this machine cannot do (e.g. QLoRA without CUDA)."""


class BudgetSpent(HptuneError):
    """The compute budget cannot finish any trial of the next phase: the run stops there.

    The phases decided so far are kept; the trial not started runs when the same command is
    run again with a larger ``budget`` (``hptune run`` exits with 3).
    """


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM (a spot preemption, ``kill``).

    A ``KeyboardInterrupt``, raised at a safe point: the trial in progress is marked
    interrupted (it runs again on the next ``hptune run``, without using up a retry) and the
    command exits with ``128 + signal``.

    Args:
        signal_number: The signal received (``signal.SIGINT`` or ``signal.SIGTERM``); kept as
            ``signal_number``, its name as ``signal_name``.

    Raises:
        ValueError: A number that is not a signal.
    """

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        super().__init__(f"interrupted by {self.signal_name}")
