"""hptune's small exception tree.

Every error a user can cause derives from :class:`HptuneError`; the command prints its
message (one paragraph naming the problem and the fix) and exits non-zero without a traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "HptuneError", "ModelError", "UnsupportedError"]


class HptuneError(Exception):
    """Base class of hptune's errors."""


class ConfigError(HptuneError):
    """The configuration is invalid: an unknown key, a wrong type or an impossible value."""


class DataError(HptuneError):
    """A data file is missing, empty or malformed."""


class ModelError(HptuneError):
    """The model cannot be found or loaded."""


class UnsupportedError(HptuneError):
    """The configuration asks for something this machine cannot do (e.g. QLoRA without CUDA)."""
