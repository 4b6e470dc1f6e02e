"""Every attribute hptune stores on Optuna trials and studies, declared once.

A run's storage is its record: optuna-dashboard shows these attributes, ``hptune status``,
``report``, ``export`` and ``diagnose`` read them back, and workers on other machines
coordinate through them. Writers and readers import the names from here; no module spells
a key itself. This module imports nothing from hptune (a leaf), so every module may use it.

Trial user attributes (``trial.user_attrs``), written by the objective unless noted:
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = [
    "BEST_EPOCHS",
    "BLEU_SIGNATURE",
    "CI95",
    "DECISION",
    "DIVERGED",
    "ENVIRONMENT",
    "EXAMPLES_PER_SECOND",
    "FIXES",
    "HEARTBEAT",
    "HPARAMS",
    "INTERRUPTED_BY",
    "MEAN",
    "OOM",
    "PRUNED_AT",
    "REMEDY",
    "REMEDY_OF",
    "RETRY_OF",
    "REUSED_FROM",
    "RUNS",
    "SEED_VALUES",
    "SETUP",
    "SPLIT_OVERLAPS",
    "STALE",
    "STATUS",
    "STD",
    "TEST_VALUES",
    "TOKENS_PER_SECOND",
    "WORKER",
    "TrialStatus",
    "is_oom",
    "status_of",
    "stored_status",
]


class TrialStatus(enum.StrEnum):
    """How a trial ended, as hptune records it (the :data:`STATUS` attribute).

    A ``str`` enum: stored as its plain value (``"ok"``), equal to it when compared.
    """

    OK = "ok"  #: trained on every seed; its value is the seed mean
    DIVERGED = "diverged"  #: a seed's loss exploded; the trial ended pruned
    PRUNED = "pruned"  #: stopped by the pruner, behind the other trials
    OOM = "oom"  #: ran out of memory; failed, never retried, bounds the batch size
    FAILED = "failed"  #: an error; retried up to ``max_retries``
    INTERRUPTED = "interrupted"  #: Ctrl-C or SIGTERM; runs again without using up a retry


# --- trial user attributes -------------------------------------------------------------------

#: :class:`TrialStatus` value of the trial.
STATUS = "status"
#: The trial's full configuration (``HParams.to_dict()``).
HPARAMS = "hparams"
#: Each seed's training run (``RunResult.to_dict()``): curves, timing, divergence.
RUNS = "runs"
#: Each seed's best validation value, keyed by the seed as a string.
SEED_VALUES = "seed_values"
#: Each seed's best epoch, keyed by the seed as a string.
BEST_EPOCHS = "best_epochs"
#: Mean, standard deviation and 95% interval (``[low, high]`` or None) over the seeds.
MEAN = "mean"
STD = "std"
CI95 = "ci95"
#: Throughput, averaged over the seeds.
EXAMPLES_PER_SECOND = "examples_per_second"
TOKENS_PER_SECOND = "tokens_per_second"
#: Each seed's test-split value at its best validation epoch (the final evaluation only).
TEST_VALUES = "test_values"
#: Where and when a seed diverged: ``{"seed": ..., "at": ...}``.
DIVERGED = "diverged"
#: Where the pruner stopped the trial: ``{"seed": ..., "epoch": ..., "step": ...}``.
PRUNED_AT = "pruned_at"
#: The trial whose runs were read back instead of trained (``"study#number"``).
REUSED_FROM = "reused_from"
#: The out-of-memory record: ``{"batch_size": ..., "message": ...}`` (written by
#: :func:`hptune.search.record_out_of_memory`).
OOM = "oom"
#: Who claimed the trial, ``host:pid`` (written by the worker queue).
WORKER = "worker"
#: The signal that interrupted the trial (``SIGINT`` or ``SIGTERM``).
INTERRUPTED_BY = "interrupted_by"
#: Set when another worker failed the trial because its heartbeat went stale.
STALE = "hptune.stale"
#: A remedy trial's changes to the configuration (e.g. a tenth of the learning rate).
REMEDY = "hptune.remedy"
#: The number of the diverged trial a remedy trial runs again.
REMEDY_OF = "hptune.remedy_of"
#: Why the remedy trial was queued, in words.
FIXES = "hptune.fixes"

# --- trial system attributes (for workers; optuna-dashboard does not show them) ---------------

#: The Unix time of a running trial's last heartbeat.
HEARTBEAT = "hptune.heartbeat"
#: The number of the failed trial this queued trial retries (its checkpoints resume it).
RETRY_OF = "hptune.retry_of"

# --- study user attributes --------------------------------------------------------------------

#: The phase's :class:`~hptune.phases.Decision` as JSON; its presence means "decided".
DECISION = "hptune.decision"
#: What the phase started from (base configuration, metric, seeds, model, data fingerprints).
SETUP = "hptune.setup"
#: sacrebleu's signature of the BLEU computation.
BLEU_SIGNATURE = "hptune.bleu_signature"
#: Examples shared between splits, by pair of splits.
SPLIT_OVERLAPS = "hptune.split_overlaps"
#: Versions, devices and platform of the machine that started the phase.
ENVIRONMENT = "hptune.environment"


def stored_status(trial: FrozenTrial) -> TrialStatus | None:
    """The :data:`STATUS` a trial recorded, or None when it recorded none."""
    value = trial.user_attrs.get(STATUS)
    try:
        return None if value is None else TrialStatus(value)
    except ValueError:  # a user's own study may use "status" for something else
        return None


def status_of(trial: FrozenTrial) -> TrialStatus:
    """How a finished trial counts for a phase's decision.

    A failed trial is :attr:`TrialStatus.FAILED` unless it ran out of memory (an
    interrupted trial is a failure too, retried); a trial that recorded no status failed.
    """
    status = stored_status(trial)
    if trial.state.name == "FAIL" and status != TrialStatus.OOM:
        return TrialStatus.FAILED
    return status or TrialStatus.FAILED


def is_oom(trial: FrozenTrial) -> bool:
    """Whether the trial recorded running out of memory."""
    return trial.user_attrs.get(STATUS) == TrialStatus.OOM
