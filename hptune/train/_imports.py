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
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] and exc.name != module_name:
            raise ConfigError(_failed_import(key, module_name, exc)) from None
        raise ConfigError(
            f"{key}: cannot import {module_name!r} ({type(exc).__name__}: {exc}); put "
            f"{module_name}.py beside the configuration file or on PYTHONPATH"
        ) from None
    except Exception as exc:  # the user's module: any error while importing it
        raise ConfigError(_failed_import(key, module_name, exc)) from None
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


def _failed_import(key: str, module_name: str, exc: BaseException) -> str:
    return (
        f"{key}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        f"{where_raised(exc)}; the module was found, its own code failed: fix it"
    )


def where_raised(exc: BaseException) -> str:
    """`` (file.py, line N)``: the innermost frame of the user's code that ``exc`` came
    through (outside hptune and the libraries), or nothing when there is none.

    Args:
        exc: A caught exception.

    Returns:
        The place, as text to append to a message.
    """
    import traceback
    from pathlib import Path

    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if _is_users(f.filename)]
    if not mine:
        return ""
    frame = mine[-1]
    return f" ({Path(frame.filename).name}, line {frame.lineno})"


def _is_users(filename: str) -> bool:
    from pathlib import Path

    parts = Path(filename).parts
    library = "lib" in parts and any(p.startswith("python3") for p in parts)
    ours = "hptune" in parts and "tests" not in parts
    return not (filename.startswith("<") or "site-packages" in parts or ours or library)
