"""Divergence remedies: a diverged trial queued once more with the guide's fix, and a
decision for a configuration that trained only with its remedy carrying that remedy."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hptune import keys
from hptune.diagnose import remedy_for
from hptune.hparams import HParams
from hptune.keys import TrialStatus

if TYPE_CHECKING:
    import optuna

    from hptune.phases import Decision

__all__ = ["queue_remedies", "with_remedy"]


def queue_remedies(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> int:
    """Queue each diverged trial once more with the guide's remedy, tagged with its origin.

    Returns:
        How many were queued.
    """
    queued = 0
    remedied = {t.user_attrs.get(keys.REMEDY_OF) for t in trials}
    for t in trials:
        attrs = t.user_attrs
        if (
            keys.stored_status(t) != TrialStatus.DIVERGED
            or keys.REMEDY in attrs  # a remedy that diverged too is not retried again
            or keys.RATE_PROBE in attrs  # a probe of the rate: diverging is its answer
            or t.number in remedied
            or keys.HPARAMS not in attrs
        ):
            continue
        changes, text = remedy_for("diverged", HParams.from_dict(attrs[keys.HPARAMS]))
        remedy = {key.split(".", 1)[1]: value for key, value in changes.items()}
        study.enqueue_trial(
            dict(t.params),
            user_attrs={
                keys.REMEDY: remedy,
                keys.REMEDY_OF: t.number,
                keys.FIXES: f"diverged: {text}",
            },
        )
        queued += 1
    return queued


def with_remedy(decision: Decision, study: optuna.Study, base: HParams) -> Decision:
    """The decision, carrying the remedy when the configuration it keeps trained only with it.

    A remedy trial counts when it finished, its parameters are those the decision keeps
    (decided values, else ``base``'s), and no trial without a remedy trained them to the end.
    A decision that keeps the incoming configuration is not changed by an unrelated remedy.
    """
    kept = decision.apply(base).to_dict()
    trials = study.get_trials(deepcopy=False)

    def kept_by_decision(t: optuna.trial.FrozenTrial) -> bool:
        return all(kept.get(k) == v for k, v in t.params.items())

    trained_plainly = any(
        keys.REMEDY not in t.user_attrs
        and keys.stored_status(t) == TrialStatus.OK
        and kept_by_decision(t)
        for t in trials
    )
    for t in trials:
        remedy = t.user_attrs.get(keys.REMEDY)
        if (
            remedy
            and not trained_plainly
            and keys.stored_status(t) == TrialStatus.OK
            and kept_by_decision(t)
        ):
            fixed = ", ".join(f"{k}={v:g}" for k, v in remedy.items())
            return dataclasses.replace(
                decision,
                params={**decision.params, **remedy},
                reason=f"{decision.reason}; trained only with the divergence remedy ({fixed})",
            )
    return decision
