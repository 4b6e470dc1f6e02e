"""What running phases returns: a phase's decision with its evidence, and a whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hptune.budget import BudgetFit
    from hptune.guardrails import Finding
    from hptune.hparams import HParams
    from hptune.phases import Decision, TrialOutcome

__all__ = ["PhaseResult", "TuneResult"]


@dataclass
class PhaseResult:
    """A phase's study, its finished trials and its decision.

    Args:
        phase: The phase's name.
        study_name: Its study in the storage.
        decision: What it decided.
        outcomes: The trials the decision was taken on.
        reused: Decided by an earlier run; nothing was trained this time.
    """

    phase: str
    study_name: str
    decision: Decision
    outcomes: list[TrialOutcome]
    reused: bool  # decided by an earlier run; nothing was trained this time


@dataclass
class TuneResult:
    """What a run decided: the final configuration and each phase's evidence.

    Args:
        hparams: The final configuration: the starting one with every decision applied.
        sources: Where each starting value came from (``config``, a preset table...).
        phases: Each configured phase's result, in order.
        final: The test-split evaluation, when one ran.
        guardrails: The guardrails' findings.
        budget: How the phases were fitted into ``budget`` (None without one).
    """

    hparams: HParams
    sources: dict[str, str]
    phases: list[PhaseResult] = field(default_factory=list)
    final: PhaseResult | None = None  # the test-split evaluation, when one ran
    guardrails: list[Finding] = field(default_factory=list)
    budget: BudgetFit | None = None
