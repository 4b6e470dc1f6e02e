"""The phases by name, and building one from a run's configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hptune.phases._base import Phase
from hptune.phases._baseline import BaselinePhase
from hptune.phases._batch_size import BatchSizePhase
from hptune.phases._epochs import EpochsPhase
from hptune.phases._final import TestEvaluation
from hptune.phases._learning_rate import LearningRatePhase
from hptune.phases._lora_rank import LoraRankPhase
from hptune.phases._regularization import RegularizationPhase

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.train import RunnerBase

__all__ = ["PHASES", "make_phase"]

#: Every phase by its name, in the method's order; ``final`` (the test evaluation) last.
#: Adding a phase: its module here, its options model in ``hptune.config``, its name in
#: ``hptune.config.PHASE_NAMES`` (the contract tests check the three agree).
PHASES: dict[str, type[Phase]] = {
    phase.name: phase
    for phase in (
        BaselinePhase,
        LearningRatePhase,
        BatchSizePhase,
        EpochsPhase,
        RegularizationPhase,
        LoraRankPhase,
        TestEvaluation,
    )
}


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
