"""The decision step: once a phase has nothing queued or running, decide, record the
decision (and its dashboard note), and remove checkpoints no trial will need again."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hptune import keys
from hptune._display import describe_decision, outcome_cells, outcome_columns
from hptune._lazy import optuna_dashboard
from hptune.phases import Decision
from hptune.pipeline._remedies import with_remedy
from hptune.record import decision_outcomes
from hptune.results import PhaseResult
from hptune.stored import state_of
from hptune.train.checkpoints import checkpoint_path, remove_checkpoints, run_name

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.hparams import HParams
    from hptune.phases import Phase, TrialOutcome

__all__ = ["decide", "stored_result"]


def stored_result(study: optuna.Study, phase: Phase, *, reused: bool) -> PhaseResult | None:
    """The phase's result as its study holds it, or None while it has no decision."""
    text = study.user_attrs.get(keys.DECISION)
    if text is None:
        return None
    outcomes = decision_outcomes(study.get_trials(deepcopy=False))
    return PhaseResult(phase.name, study.study_name, Decision.from_json(text), outcomes, reused)


def decide(study: optuna.Study, phase: Phase, base: HParams, config: TuneConfig) -> PhaseResult:
    """Decide the phase from its study's trials and record the decision on the study.

    Call it under the study's queue lock, with nothing queued or running.
    """
    outcomes = decision_outcomes(study.get_trials(deepcopy=False))
    decision = with_remedy(phase.decide(outcomes, base, config.objective.goal), study, base)
    notes = [*phase.notes, *_flat_metric(outcomes, config), *_over_budget(study)]
    if notes:
        decision = dataclasses.replace(decision, reason=f"{decision.reason}; {'; '.join(notes)}")
    study.set_user_attr(keys.DECISION, decision.to_json())
    _save_dashboard_note(study, decision, outcomes, config.objective.metric_name)
    _remove_unfinished_checkpoints(study, config)
    return PhaseResult(phase.name, study.study_name, decision, outcomes, reused=False)


def _flat_metric(outcomes: list[TrialOutcome], config: TuneConfig) -> list[str]:
    """A warning when every seed of every candidate scored the same: the metric told nothing
    apart (exact match at 0 before a model can answer, BLEU on short answers), and the
    decision fell to the tie-break."""
    values = {v for o in outcomes for v in o.seed_values.values()}
    if len({o.number for o in outcomes if o.seed_values}) < 2 or len(values) != 1:
        return []
    return [
        f"note: every seed of every candidate scored {values.pop():g} on "
        f"{config.objective.metric_name}, so the metric told nothing apart; choose one that "
        "varies between configurations (e.g. chrf or eval_loss)"
    ]


def _over_budget(study: optuna.Study) -> list[str]:
    """A note when the compute budget kept trials from starting: the phase decided on what
    it had."""
    stopped = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(keys.STATUS) == keys.TrialStatus.OVER_BUDGET
    ]
    if not stopped:
        return []
    return [
        f"note: the compute budget kept {len(stopped)} trial(s) from starting "
        f"({stopped[0].user_attrs.get(keys.OVER_BUDGET)}); decided on the trials that trained"
    ]


def _remove_unfinished_checkpoints(study: optuna.Study, config: TuneConfig) -> None:
    """Once a phase is decided, a failed or interrupted trial's checkpoints (kept so far in
    case it ran again) are never needed: remove them, so disk holds only finished trials'
    best and last epochs."""
    for trial in study.get_trials(deepcopy=False):
        if state_of(trial) != "complete":
            name = run_name(study.study_name, trial.number)
            remove_checkpoints(checkpoint_path(config.output_dir, name))


def _save_dashboard_note(
    study: optuna.Study, decision: Decision, outcomes: list[TrialOutcome], metric: str
) -> None:
    """The decision and its evidence as the study's optuna-dashboard note (Markdown)."""
    columns = outcome_columns(metric)
    lines = [
        f"# {study.study_name}",
        "",
        f"**Decision {describe_decision(decision)}.**",
        "",
        decision.reason,
        "",
        "| " + " | ".join(columns) + " |",
        "|" + " --- |" * len(columns),
    ]
    for o in sorted(outcomes, key=lambda o: o.number):
        lines.append("| " + " | ".join(outcome_cells(o)) + " |")
    won = decision.summary.get("rates_won") or []
    if won:  # a phase that re-tuned the rate: each candidate's best
        lines += ["", "| candidate | its best learning rate | seed mean |", "| --- | --- | --- |"]
        for r in won:
            rate = f"{r['learning_rate']:.3g} (x{r['factor']:.3g})"
            lines.append(f"| {r['candidate']} | {rate} | {r['mean']:.4g} |")
    optuna_dashboard.save_note(study, "\n".join(lines) + "\n")
