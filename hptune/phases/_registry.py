"""The phases by name, read from the registry, and building one from a run's configuration."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, cast

from hptune.config import registered_phases
from hptune.phases._base import Phase

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.train import RunnerBase

__all__ = ["PHASES", "make_phase"]


class _Phases(Mapping[str, type[Phase]]):
    """Every registered phase by its name, in the order they run (``final`` last): a live
    view of the registry (``hptune.config.registered_phases``), so a phase registered later
    (``@register_phase``) is in it too."""

    def _read(self) -> dict[str, type[Phase]]:
        return cast("dict[str, type[Phase]]", registered_phases())

    def __getitem__(self, name: str) -> type[Phase]:
        return self._read()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"PHASES({', '.join(self._read())})"


#: Every phase by its name, in the method's order; ``final`` (the test evaluation) last.
#: Adding a phase: its module with its class registered (``@register_phase``), and its
#: options model (a ``hptune.config.PhaseOptions``) named by the class.
PHASES: Mapping[str, type[Phase]] = _Phases()


def make_phase(
    name: str,
    config: TuneConfig,
    runner: RunnerBase,
    base: HParams,
    *,
    incoming: Sequence[Diagnosis] | None = None,
) -> Phase:
    """The phase ``name`` configured from ``config``, starting from the configuration ``base``.

    Phases are made when they start, because some depend on earlier decisions (the batch
    phase keeps the effective batch the phases before it used) and on how the incoming
    configuration trained: when it overfits, the epochs phase also tries the epoch where
    validation was best, and the regularization phase searches the upper half of the
    weight-decay range.

    Args:
        name: A key of ``PHASES``.
        config: The run's configuration.
        runner: The run's trainer.
        base: The configuration the earlier phases decided.
        incoming: How ``base`` trained in an earlier phase, seed by seed.

    Returns:
        The phase, ready to run.

    Raises:
        ValueError: An unknown phase name.
        ConfigError: The phase's options do not fit ``base``.
    """
    if name not in PHASES:
        raise ValueError(f"unknown phase {name=}; use one of {', '.join(PHASES)}")
    return PHASES[name].from_config(config, base=base, runner=runner, incoming=incoming or ())
