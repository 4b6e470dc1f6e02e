"""Everything a report shows, read from the run's storage (no model, no data needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune._export import exported_config
from hptune.exceptions import ConfigError
from hptune.record import RunRecord, finished_outcomes

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
                return list(t.user_attrs.get(keys.RUNS, []))
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
    #: How the metric was scored, in words (runs before it was recorded: None).
    scoring: str | None
    generated_at: str

    @property
    def final(self) -> PhaseEvidence | None:
        return next((p for p in self.phases if p.phase == "final"), None)


def collect(config: TuneConfig) -> ReportData:
    """Read every phase's study of the run; refuse when the run has not started.

    Args:
        config: The run's configuration.

    Returns:
        Everything the report shows.

    Raises:
        NoStorageYet: There is no storage.
        ConfigError: The storage holds no phase of this run.
    """
    record = RunRecord(config)
    stored = record.phases()
    if all(p.state == "pending" for p in stored):
        raise ConfigError(
            f"{config.storage_display!r} holds no phase of run {config.name!r}; run "
            "'hptune run' on this configuration first (or check its 'name' and 'storage')"
        )
    phases = []
    for p in stored:
        evidence = PhaseEvidence(p.phase, p.study_name, p.state)
        if p.study is not None:
            evidence.trials = p.trials
            evidence.user_attrs = p.user_attrs
            # The report shows failed attempts too, beside the trials the decision used.
            evidence.outcomes = finished_outcomes(p.trials)
            evidence.decision = p.decision
        phases.append(evidence)
    first = next(p.user_attrs for p in phases if p.user_attrs)
    return ReportData(
        name=config.name,
        metric=config.objective.metric_name,
        direction=config.objective.goal,
        # the seeds the run trained on (a compute budget may have cut the configured ones)
        seeds=first.get(keys.SETUP, {}).get("seeds", config.objective.seed_list),
        storage=config.storage_display,
        phases=phases,
        diagnoses=record.diagnoses(),
        exported=_exported(config),
        environment=first.get(keys.ENVIRONMENT, {}),
        fingerprints=first.get(keys.SETUP, {}).get("fingerprints", {}),
        split_overlaps=first.get(keys.SPLIT_OVERLAPS, {}),
        bleu_signature=first.get(keys.BLEU_SIGNATURE),
        scoring=first.get(keys.SCORING),
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _exported(config: TuneConfig) -> dict[str, Any] | None:
    try:
        return exported_config(config)
    except ConfigError:
        return None  # a phase has not decided yet: nothing to export
