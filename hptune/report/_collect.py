"""Everything a report shows, read from the run's storage (no model, no data needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hptune.exceptions import ConfigError

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.phases import Decision, TrialOutcome

__all__ = ["PhaseEvidence", "ReportData", "collect"]


@dataclass
class PhaseEvidence:
    """One phase's study: its trials (with curves), their outcomes and the decision."""

    phase: str
    study_name: str
    state: str  # "done", "in progress" or "pending"
    decision: Decision | None = None
    outcomes: list[TrialOutcome] = field(default_factory=list)
    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    user_attrs: dict[str, Any] = field(default_factory=dict)

    def runs(self, number: int) -> list[dict[str, Any]]:
        """The per-seed training runs (curves) of trial ``number``."""
        for t in self.trials:
            if t.number == number:
                return list(t.user_attrs.get("runs", []))
        return []


@dataclass
class ReportData:
    """The run as a report presents it."""

    name: str
    metric: str
    direction: str
    seeds: list[int]
    storage: str  # password masked
    phases: list[PhaseEvidence]
    diagnoses: list[tuple[str, int, Diagnosis]]
    exported: dict[str, Any] | None  # None until every phase has decided
    environment: dict[str, Any]
    fingerprints: dict[str, str]
    split_overlaps: dict[str, int]
    bleu_signature: str | None
    generated_at: str

    @property
    def final(self) -> PhaseEvidence | None:
        return next((p for p in self.phases if p.phase == "final"), None)


def collect(config: TuneConfig) -> ReportData:
    """Read every phase's study of the run; refuse when the run has not started.

    Raises:
        ConfigError: there is no storage, or it holds no phase of this run.
    """
    import optuna

    from hptune._api import status
    from hptune.diagnose import diagnose_for_config
    from hptune.objective import outcome_from_trial
    from hptune.phases import DECISION_ATTR, Decision
    from hptune.storage import open_storage

    storage = open_storage(config, must_exist=True)
    rows = status(config)
    if all(row.state == "pending" for row in rows):
        raise ConfigError(
            f"{config.storage_display!r} holds no phase of run {config.name!r}; run "
            "'hptune run' on this configuration first (or check its 'name' and 'storage')"
        )
    phases = []
    for row in rows:
        evidence = PhaseEvidence(row.phase, row.study_name, row.state)
        if row.state != "pending":
            study = optuna.load_study(study_name=row.study_name, storage=storage)
            evidence.trials = study.get_trials(deepcopy=False)
            evidence.user_attrs = dict(study.user_attrs)
            evidence.outcomes = [
                outcome_from_trial(t)
                for t in evidence.trials
                if t.state.name in ("COMPLETE", "PRUNED", "FAIL")
            ]
            if DECISION_ATTR in study.user_attrs:
                evidence.decision = Decision.from_json(study.user_attrs[DECISION_ATTR])
        phases.append(evidence)
    first = next(p.user_attrs for p in phases if p.user_attrs)
    return ReportData(
        name=config.name,
        metric=config.objective.metric,
        direction=config.objective.direction,
        seeds=config.objective.seed_list,
        storage=config.storage_display,
        phases=phases,
        diagnoses=diagnose_for_config(config),
        exported=_exported(config),
        environment=first.get("hptune.environment", {}),
        fingerprints=first.get("hptune.setup", {}).get("fingerprints", {}),
        split_overlaps=first.get("hptune.split_overlaps", {}),
        bleu_signature=first.get("hptune.bleu_signature"),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _exported(config: TuneConfig) -> dict[str, Any] | None:
    from hptune.export import exported_config

    try:
        return exported_config(config)
    except ConfigError:
        return None  # a phase has not decided yet: nothing to export
