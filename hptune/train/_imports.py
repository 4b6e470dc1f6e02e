"""The user's ``"module:function"`` names (a metric, a training function, a Trainer factory),
imported from the configuration's folder first."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from hptune.exceptions import ConfigError


def import_function(
    spec: str, search_dir: str | None, *, key: str, signature: str
) -> Callable[..., Any]:
    """The function ``spec`` (``"module:function"``) names, imported from ``search_dir`` first.

    Raises:
        ConfigError: The module cannot be imported, or has no such function; the message
            names ``key`` (where it was configured) and the ``signature`` expected.
    """
    module_name, _, function = str(spec).partition(":")
    added = search_dir is not None and search_dir not in sys.path
    if added:
        sys.path.insert(0, str(search_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error while importing it
        raise ConfigError(
            f"{key}: cannot import {module_name!r} ({type(exc).__name__}: {exc}); put "
            f"{module_name}.py beside the configuration file or on PYTHONPATH"
        ) from None
    finally:
        if added:
            sys.path.remove(str(search_dir))
    fn = getattr(module, function, None)
    if not function:
        raise ConfigError(f'{key}: name the function too, as "{module_name}:NAME"')
    if not callable(fn):
        raise ConfigError(
            f"{key}: {module_name} has no function {function!r}; define {function}{signature} there"
        )
    return fn
