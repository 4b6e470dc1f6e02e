"""What running phases returns: a phase's decision with its evidence, and a whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, SupportsIndex, overload

from hptune._lazy import optuna
from hptune.train.arguments import hparam_arguments

if TYPE_CHECKING:
    from hptune.budget import BudgetFit
    from hptune.guardrails import Finding
    from hptune.hparams import HParams
    from hptune.phases import Decision, TrialOutcome

__all__ = ["PhaseResult", "PhaseResults", "TuneResult"]


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


class PhaseResults(list["PhaseResult"]):
    """The phases' results in order, also found by name: ``result.phases["learning_rate"]``."""

    @overload
    def __getitem__(self, key: SupportsIndex | str) -> PhaseResult: ...

    @overload
    def __getitem__(self, key: slice) -> list[PhaseResult]: ...

    def __getitem__(self, key: SupportsIndex | slice | str) -> Any:
        if not isinstance(key, str):
            return super().__getitem__(key)
        for result in self:
            if result.phase == key:
                return result
        names = ", ".join(p.phase for p in self) or "none"
        raise KeyError(f"no phase {key!r} ran; the phases that ran: {names}")


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
        storage: The opened storage the studies are in (``study`` loads them from it).
    """

    hparams: HParams
    sources: dict[str, str]
    phases: PhaseResults = field(default_factory=PhaseResults)
    final: PhaseResult | None = None  # the test-split evaluation, when one ran
    guardrails: list[Finding] = field(default_factory=list)
    budget: BudgetFit | None = None
    storage: optuna.storages.BaseStorage | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.phases, PhaseResults):
            self.phases = PhaseResults(self.phases)

    @property
    def best_params(self) -> dict[str, Any]:
        """The final configuration under ``TrainingArguments`` names (``learning_rate``,
        ``per_device_train_batch_size``, ``num_train_epochs``...), with any searched key, and
        ``lora_r`` / ``lora_alpha`` (TRL's names) when the LoRA rank phase decided them."""
        params = {**hparam_arguments(self.hparams), **dict(self.hparams.args)}
        if self.hparams.lora_r is not None:
            params.update(lora_r=self.hparams.lora_r, lora_alpha=self.hparams.lora_alpha)
        return params

    def study(self, phase: str) -> optuna.Study:
        """The Optuna study of ``phase`` (``"learning_rate"``, ``"final"``...).

        Args:
            phase: A phase that ran.

        Returns:
            The study, loaded from the run's storage.

        Raises:
            KeyError: No such phase ran.
        """
        ran = [*self.phases, *([self.final] if self.final is not None else [])]
        found = next((p for p in ran if p.phase == phase), None)
        if found is None or self.storage is None:
            names = ", ".join(p.phase for p in ran) or "none"
            raise KeyError(f"no phase {phase!r} ran; the phases that ran: {names}")
        return optuna.load_study(study_name=found.study_name, storage=self.storage)
