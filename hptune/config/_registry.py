"""The phases by name: the one list of them, which the phase classes fill themselves.

A phase class registers with ``@register_phase`` (``hptune.phases.register_phase``). Its
class declares everything the rest of the package needs of it: ``name``, ``order`` (where it
runs), ``options_model`` (its section under ``phases:``), ``in_method`` (whether it runs
unless ``phases.run`` says otherwise) and ``listed`` (whether ``phases.run`` may name it);
``hptune.phases.Phase`` documents the rest (title, parameters, budget cuts, plan detail).
The configuration reads the list when it validates, so it never imports a phase.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "method_phase_names",
    "phase_names",
    "phase_section_models",
    "register_phase",
    "registered_phases",
    "unregister_phase",
]

PhaseT = TypeVar("PhaseT", bound=type)

#: Each registered phase class by its name (in the order registered; read them in ``order``).
_REGISTRY: dict[str, Any] = {}

#: The package whose import registers the method's own phases.
_BUILT_IN = "hptune.phases"


def register_phase(phase: PhaseT) -> PhaseT:
    """Add a phase class to the registry (a class decorator).

    Args:
        phase: A ``hptune.phases.Phase`` subclass with its ``name`` and ``order``.

    Returns:
        The class itself.

    Raises:
        ValueError: Another class is registered under the same name.
    """
    name = phase.name  # type: ignore[attr-defined]
    if _REGISTRY.get(name, phase) is not phase:
        raise ValueError(f"a phase named {name!r} is registered already: {_REGISTRY[name]!r}")
    _REGISTRY[name] = phase
    return phase


def unregister_phase(name: str) -> None:
    """Remove a phase from the registry (e.g. a test's phase, after the test).

    Args:
        name: The phase's name.

    Raises:
        KeyError: No phase has that name.
    """
    del _REGISTRY[name]


def registered_phases() -> dict[str, Any]:
    """Every registered phase class by its name, in the order the phases run.

    Returns:
        A new dict, sorted by each class's ``order``.
    """
    # The registry's load point: the method's phases live in a higher layer
    # (hptune.phases), whose import registers them; the first lookup imports that package
    # by name, so that this module and the configuration never import a phase.
    importlib.import_module(_BUILT_IN)
    return dict(sorted(_REGISTRY.items(), key=lambda item: item[1].order))


def phase_names() -> list[str]:
    """The phases ``phases.run`` may name, in the order they run.

    Returns:
        Phase names.
    """
    return [name for name, phase in registered_phases().items() if phase.listed]


def method_phase_names() -> list[str]:
    """The phases a run runs unless ``phases.run`` says otherwise, in order.

    Returns:
        Phase names.
    """
    return [name for name, phase in registered_phases().items() if phase.in_method]


def phase_section_models() -> dict[str, type[BaseModel]]:
    """Each phase's section under ``phases:``, by the phase's name (phases without one left
    out).

    Returns:
        The options model of each phase that has one, in the order the phases run.
    """
    return {
        name: phase.options_model
        for name, phase in registered_phases().items()
        if phase.options_model is not None
    }
