"""``@experimental``: a public function or class whose interface may still change.

As Optuna's ``experimental_func`` / ``experimental_class``: a call warns with
`hptune.ExperimentalWarning` (the docstring says so in a ``Note:``, which
tests/test_architecture.py checks). Unlike Optuna's, hptune's own calls
stay silent (a phase building its pruner is not the user choosing an experimental feature):
only a call from outside the package warns.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from hptune.exceptions import ExperimentalWarning

__all__ = ["experimental"]

_T = TypeVar("_T")


def experimental(version: str) -> Callable[[_T], _T]:
    """Mark a public function or class experimental.

    Args:
        version: The hptune version that added it.

    Returns:
        A decorator that keeps the decorated object's type: the function (or the class's
        ``__init__``) warns with `ExperimentalWarning` when called from outside hptune.
    """

    def decorate(obj: _T) -> _T:
        name = getattr(obj, "__qualname__", repr(obj))
        target: Any = obj.__init__ if isinstance(obj, type) else obj  # type: ignore[misc]

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller != "hptune" and not caller.startswith("hptune."):
                warnings.warn(
                    f"{name} is experimental (added in {version}): its interface may change "
                    "in the next release",
                    ExperimentalWarning,
                    stacklevel=2,
                )
            return target(*args, **kwargs)

        if isinstance(obj, type):
            obj.__init__ = wrapper  # type: ignore[misc]
        else:
            obj = wrapper  # type: ignore[assignment]
        return obj

    return decorate
