"""Every attribute hptune stores on Optuna trials and studies, declared once.

A run's storage is its record: optuna-dashboard shows these attributes, ``hptune status``,
``report``, ``export`` and ``diagnose`` read them back, and workers on other machines
coordinate through them. Writers and readers import the names from here; no module spells
a key itself. This module imports nothing from hptune (a leaf), so every module may use it.

Trial user attributes (``trial.user_attrs``) are written by the objective unless noted;
the trial system attributes (``HEARTBEAT``, ``RETRY_OF``) are for workers, and the study
user attributes (``DECISION``, ``SETUP``, ...) record each phase.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from hptune._lazy import optuna

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, Trial

__all__ = [
    "BEST_EPOCHS",
    "BLEU_SIGNATURE",
    "CI95",
    "DECISION",
    "DIVERGED",
    "ENVIRONMENT",
    "EXAMPLES_PER_SECOND",
    "FIXES",
    "GROUP",
    "HEARTBEAT",
    "HPARAMS",
    "INTERRUPTED_BY",
    "LOOKS_PER_EPOCH",
    "MEAN",
    "OOM",
    "OVER_BUDGET",
    "PRUNED_AT",
    "QUEUED_AS",
    "RACE_OF",
    "RACE_SEEDS",
    "RATE_PROBE",
    "REMEDY",
    "REMEDY_OF",
    "RETRY_OF",
    "REUSED_FROM",
    "RUNS",
    "SCORING",
    "SEEDS_TOGETHER",
    "SEED_CURVES",
    "SEED_VALUES",
    "SETUP",
    "SETUP_BUDGET_FIT",
    "SPARE",
    "SPLIT_OVERLAPS",
    "STALE_TRIALS",
    "STATUS",
    "STD",
    "TEST_VALUES",
    "TOKENS_PER_SECOND",
    "WORKER",
    "TrialStatus",
    "is_oom",
    "set_status",
    "status_of",
    "stored_status",
]


class TrialStatus(enum.StrEnum):
    """How a trial ended, as hptune records it (the ``STATUS`` attribute).

    A ``str`` enum: stored as its plain value (``"ok"``), equal to it when compared.

    Attributes:
        OK: Trained on every seed; its value is the seed mean.
        DIVERGED: A seed's loss exploded; the trial ended pruned.
        PRUNED: Stopped by the pruner, behind the other trials.
        OOM: Ran out of memory; failed, never retried, bounds the batch size.
        FAILED: An error; retried up to ``max_retries``.
        INTERRUPTED: Ctrl-C or SIGTERM; runs again without using up a retry.
        OVER_BUDGET: Not started: the rest of the compute budget could not finish it. It
            ends pruned when its phase decides on the trials it has, or failed (run again
            with more budget, without using up a retry) when the run stops there.
    """

    OK = "ok"
    DIVERGED = "diverged"
    PRUNED = "pruned"
    OOM = "oom"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    OVER_BUDGET = "over_budget"


# --- trial user attributes -------------------------------------------------------------------

STATUS = "status"
"""``TrialStatus`` value of the trial."""
HPARAMS = "hparams"
"""The trial's full configuration (``HParams.to_dict()``)."""
RUNS = "runs"
"""Each seed's training run (``RunResult.to_dict()``): curves, timing, divergence."""
SEED_VALUES = "seed_values"
"""Each seed's best validation value, keyed by the seed as a string."""
BEST_EPOCHS = "best_epochs"
"""Each seed's best epoch, keyed by the seed as a string."""
MEAN = "mean"
"""The mean over the seeds."""
STD = "std"
"""The standard deviation over the seeds (None with one seed)."""
CI95 = "ci95"
"""The 95% interval of the mean over the seeds: ``[low, high]``, or None."""
EXAMPLES_PER_SECOND = "examples_per_second"
"""Training examples per second per GPU (a data-parallel run's over its processes),
averaged over the seeds."""
TOKENS_PER_SECOND = "tokens_per_second"
"""Training tokens per second per GPU, averaged over the seeds."""
TEST_VALUES = "test_values"
"""Each seed's test-split value at its best validation epoch (the final evaluation only)."""
DIVERGED = "diverged"
"""Where and when a seed diverged: ``{"seed": ..., "at": ...}``."""
SEED_CURVES = "seed_curves"
"""Each seed's validation value per epoch (and per look within one, with
``training.eval_steps``) so far, ``[[seed, [values...]], ...]`` in training
order, written every epoch for ``hptune.search.PairedPruner``."""
GROUP = "group"
"""The trial numbers of the stack a trial trained in (``training.candidates_together``), its
own among them: trained side by side over one base, each still its own trial."""
SEEDS_TOGETHER = "seeds_together"
"""True on a trial whose seeds trained together (``training.seeds_together``): their curves
grow side by side, so a running trial's every seed may still be on its way; absent: one after
the other."""
LOOKS_PER_EPOCH = "looks_per_epoch"
"""The positions each epoch adds to ``seed_curves`` with ``training.eval_steps`` (its looks
within and its end); absent: one, the epoch's end."""
PRUNED_AT = "pruned_at"
"""Where the pruner stopped the trial: ``{"seed": ..., "epoch": ..., "step": ...}``."""
REUSED_FROM = "reused_from"
"""The trial whose runs were read back instead of trained (``"study#number"``)."""
OOM = "oom"
"""The out-of-memory record: ``{"batch_size": ..., "message": ...}`` (written by
``hptune.search.record_out_of_memory``)."""
WORKER = "worker"
"""Who claimed the trial, ``host:pid`` (written by the worker queue)."""
INTERRUPTED_BY = "interrupted_by"
"""The signal that interrupted the trial (``SIGINT`` or ``SIGTERM``)."""
OVER_BUDGET = "hptune.over_budget"
"""Why the compute budget kept the trial from starting, in words."""
REMEDY = "hptune.remedy"
"""A remedy trial's changes to the configuration (e.g. a tenth of the learning rate)."""
REMEDY_OF = "hptune.remedy_of"
"""The number of the diverged trial a remedy trial runs again."""
FIXES = "hptune.fixes"
"""Why the remedy trial was queued, in words."""
RACE_OF = "hptune.race_of"
"""The number of the trial whose evidence a racing trial adds to (same parameters)."""
RACE_SEEDS = "hptune.race_seeds"
"""The extra seeds a racing trial trains (see ``objective.max_seeds``)."""
SPARE = "hptune.spare"
"""Why a trial beyond the phase's plan was queued from the compute budget's spare room, in
words (``hptune.pipeline._spare``)."""
RATE_PROBE = "hptune.rate_probe"
"""Why a trial re-tunes the learning rate for its configuration, in words: a probe of the
local rate set, which ends as diverged with no remedy (``hptune.pipeline._probes``)."""
#: What a trial was queued as, beyond its phase's own trials: a retry keeps it (a spare
#: trial stays spare, a rate probe gets no remedy), and the phase's spend names its part.
QUEUED_AS = (SPARE, RATE_PROBE)

# --- trial system attributes (for workers; optuna-dashboard does not show them) ---------------

HEARTBEAT = "hptune.heartbeat"
"""The Unix time of a running trial's last heartbeat."""
RETRY_OF = "hptune.retry_of"
"""The number of the failed trial this queued trial retries (its checkpoints resume it)."""

# --- study user attributes --------------------------------------------------------------------

DECISION = "hptune.decision"
"""The phase's ``hptune.phases.Decision`` as JSON; its presence means "decided"."""
SETUP = "hptune.setup"
"""What the phase started from (base configuration, metric, seeds, model, data fingerprints)."""
STALE_TRIALS = "hptune.stale_trials"
"""The numbers of the phase's trials a worker failed because their heartbeat stood still
(written after the failure, so a trial that finished meanwhile is never listed)."""
SETUP_BUDGET_FIT = "budget_fit"
"""In ``SETUP``: the budget fit the phase started under (``hptune.budget.BudgetFit.to_stored``),
made again by every later start and worker with the same budget."""
BLEU_SIGNATURE = "hptune.bleu_signature"
"""sacrebleu's signature of the BLEU computation."""
SCORING = "hptune.scoring"
"""How the metric is scored, in words: the data format, the validation subset, the test split."""
SPLIT_OVERLAPS = "hptune.split_overlaps"
"""Examples shared between splits, by pair of splits."""
ENVIRONMENT = "hptune.environment"
"""Versions, devices and platform of the machine that started the phase."""


def set_status(trial: Trial, status: TrialStatus) -> None:
    """Record how ``trial`` ended, as the plain string Optuna's storages all keep alike.

    Args:
        trial: A running trial.
        status: How it ended.
    """
    trial.set_user_attr(STATUS, status.value)


def stored_status(trial: FrozenTrial) -> TrialStatus | None:
    """The ``STATUS`` a trial recorded, or None when it recorded none.

    Args:
        trial: A trial of any study (a value that is not a ``TrialStatus`` counts as none).

    Returns:
        The recorded status, or None.
    """
    value = trial.user_attrs.get(STATUS)
    try:
        return None if value is None else TrialStatus(value)
    except ValueError:  # a user's own study may use "status" for something else
        return None


def status_of(trial: FrozenTrial) -> TrialStatus:
    """How a finished trial counts for a phase's decision.

    A failed trial is ``TrialStatus.FAILED`` unless it ran out of memory (an
    interrupted trial is a failure too, retried); a trial that recorded no status failed.

    Args:
        trial: A finished trial.

    Returns:
        Its status for the decision.
    """
    status = stored_status(trial)
    if trial.state == optuna.trial.TrialState.FAIL and status != TrialStatus.OOM:
        return TrialStatus.FAILED
    return status or TrialStatus.FAILED


def is_oom(trial: FrozenTrial) -> bool:
    """Whether the trial recorded running out of memory.

    Args:
        trial: A trial of any study.

    Returns:
        True when its ``STATUS`` is ``TrialStatus.OOM``.
    """
    return trial.user_attrs.get(STATUS) == TrialStatus.OOM
