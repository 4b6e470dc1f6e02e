"""Learning-curve diagnostics with remedies: the method's debugging guide, as code.

Each seed's curves are classified as one of:

* ``diverged``: a non-finite loss, or a loss that rose past 1.5 x where it started;
* ``not_learning``: training and validation loss flat (under 2% better) or rising;
* ``overfitting``: validation loss rose 2% or more past its minimum while training loss kept
  falling;
* ``out_of_memory``: the run did not fit the device;
* ``healthy``.

Each diagnosis carries its evidence (epochs and values) and the guide's remedy as concrete
configuration changes, computed from the configuration that ran:

=================  ====================================================================
symptom            remedy
=================  ====================================================================
diverged           learning rate / 10; gradient clipping at 1.0
not learning       learning rate x 3 (2-3x); one more epoch
overfitting        early stopping at the best epoch; weight decay up (x3, at most 0.1);
                   LoRA dropout + 0.05
out of memory      batch / 2 with gradient accumulation x 2; QLoRA
=================  ====================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hptune import keys
from hptune.diagnose._remedies import remedy_for
from hptune.hparams import HParams

if TYPE_CHECKING:
    import optuna

__all__ = [
    "Diagnosis",
    "diagnose",
    "diagnose_curves",
    "diagnose_trial",
    "overfit_epochs",
    "remedy_for",
]

Kind = Literal["diverged", "not_learning", "overfitting", "out_of_memory", "healthy"]

#: A loss this many times its start has diverged (per-epoch curves).
EXPLODE_FACTOR = 1.5
#: Less than this relative improvement counts as flat.
FLAT_TOLERANCE = 0.02
#: Validation this much above its minimum (relative) counts as rising.
RISE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Diagnosis:
    """What one seed's curves show, the evidence, and the remedy as configuration changes.

    Args:
        kind: ``diverged``, ``not_learning``, ``overfitting``, ``out_of_memory`` or
            ``healthy``.
        evidence: What in the curves shows it (epochs and values).
        remedy: The configuration changes, by key (``training.learning_rate``: new value).
        remedy_text: The remedy in words, with the guide's advice.
        seed: The run's seed, when known.
    """

    kind: Kind
    evidence: str
    remedy: dict[str, Any] = field(default_factory=dict)  # "training.learning_rate" -> value
    remedy_text: str = ""
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-serialisable)."""
        return asdict(self)

    def __str__(self) -> str:
        seed = "" if self.seed is None else f"seed {self.seed}: "
        fix = f" Remedy: {self.remedy_text}" if self.remedy_text else ""
        return f"{seed}{self.kind}: {self.evidence}.{fix}"


def diagnose_curves(
    train_loss: Sequence[float],
    eval_loss: Sequence[float],
    *,
    hparams: HParams | None = None,
    dropout: float | None = None,
    diverged_at: str | None = None,
    seed: int | None = None,
    initial_eval_loss: float | None = None,
) -> Diagnosis:
    """Classify one run from its per-epoch training and validation losses.

    Args:
        train_loss: mean training loss per epoch.
        eval_loss: validation loss per epoch.
        hparams: the configuration that ran, to express the remedy as new values.
        dropout: the LoRA dropout that ran (for the overfitting remedy).
        diverged_at: where the training loop stopped a non-finite loss, if it did.
        seed: the run's seed, carried into the diagnosis.
        initial_eval_loss: the validation loss before training, where the curves start
            (without it, epoch 1 stands in for the start).

    Returns:
        The first of diverged, not learning and overfitting that the curves show, else
        healthy; with its remedy (as configuration changes when ``hparams`` is given).

    Raises:
        ValueError: Curves of different lengths.
    """
    if len(train_loss) != len(eval_loss):
        raise ValueError(f"one value per epoch each, got {len(train_loss)=}, {len(eval_loss)=}")
    problem = _not_finite(train_loss, eval_loss, diverged_at)
    if problem is None and not eval_loss:
        return Diagnosis("healthy", "no finished epoch to judge", seed=seed)
    problem = (
        problem
        or _blown_up(train_loss, eval_loss, initial_eval_loss)
        or _stalled_or_overfitting(train_loss, eval_loss, initial_eval_loss)
    )
    if problem is not None:
        kind, evidence = problem
        remedy, text = remedy_for(kind, hparams, dropout=dropout, curves=(train_loss, eval_loss))
        return Diagnosis(kind, evidence, remedy, text, seed)
    best = min(range(len(eval_loss)), key=lambda i: eval_loss[i])
    return Diagnosis(
        "healthy",
        f"validation loss {eval_loss[0]:.4g} -> {eval_loss[-1]:.4g} "
        f"(best {eval_loss[best]:.4g} at epoch {best + 1})",
        seed=seed,
    )


def _not_finite(
    train_loss: Sequence[float], eval_loss: Sequence[float], diverged_at: str | None
) -> tuple[Kind, str] | None:
    """A run the loop stopped, or a loss that is not finite: the kind and the evidence (as
    for the other problems below); None for neither."""
    # A NaN training loss of a run that did not stop is one that was not measured (a user's
    # train_fn may report validation only): a diverged run has diverged_at.
    values = [*(v for v in train_loss if not math.isnan(v)), *eval_loss]
    if diverged_at is not None:
        return "diverged", f"the run was stopped at {diverged_at}"
    if all(math.isfinite(v) for v in values):
        return None
    return "diverged", f"non-finite loss at {_first_non_finite(train_loss, eval_loss)}"


def _first_non_finite(train_loss: Sequence[float], eval_loss: Sequence[float]) -> str:
    for epoch, (t, e) in enumerate(zip(train_loss, eval_loss, strict=True), start=1):
        if not math.isfinite(t):
            return f"epoch {epoch} (training)"
        if not math.isfinite(e):
            return f"epoch {epoch} (validation)"
    return "an unknown step"


def _blown_up(
    train_loss: Sequence[float], eval_loss: Sequence[float], start: float | None
) -> tuple[Kind, str] | None:
    """A loss that rose past ``EXPLODE_FACTOR`` times its start (before training, or epoch 1)."""
    if start is not None and math.isfinite(start):
        peak = max(range(len(eval_loss)), key=lambda i: eval_loss[i])
        # Validation far above its start while training fell below it is overfitting (judged
        # below), not divergence: a too-high rate drives the training loss up as well.
        if eval_loss[peak] > EXPLODE_FACTOR * start and not train_loss[peak] < start:
            return (
                "diverged",
                f"validation loss rose from {start:.4g} before training to {eval_loss[peak]:.4g}"
                f" (epoch {peak + 1}), past {EXPLODE_FACTOR:g}x its start",
            )
    for name, curve in (("training", train_loss), ("validation", eval_loss)):
        peak = max(range(len(curve)), key=lambda i: curve[i])
        overfits = name == "validation" and train_loss[peak] < train_loss[0]
        if peak > 0 and curve[peak] > EXPLODE_FACTOR * curve[0] and not overfits:
            return (
                "diverged",
                f"{name} loss rose from {curve[0]:.4g} (epoch 1) to {curve[peak]:.4g} "
                f"(epoch {peak + 1}), past {EXPLODE_FACTOR:g}x its start",
            )
    return None


def _stalled_or_overfitting(
    train_loss: Sequence[float], eval_loss: Sequence[float], start: float | None
) -> tuple[Kind, str] | None:
    """Never back to the start (the rate too high), not learning, or overfitting."""
    best = min(range(len(eval_loss)), key=lambda i: eval_loss[i])
    # Where the curves start: before training when measured, else the first epoch.
    measured_start = start is not None and math.isfinite(start)
    if not measured_start and len(eval_loss) < 2:
        return None
    first_train = start if measured_start else train_loss[0]
    first_eval = start if measured_start else eval_loss[0]
    assert first_train is not None and first_eval is not None
    train_gain = (first_train - train_loss[-1]) / abs(first_train)
    eval_gain = (first_eval - eval_loss[best]) / abs(first_eval)
    since = "before training" if measured_start else "epoch 1"
    # Worse than before training on every epoch, with training no better: the rate is
    # too high (the guide: lower it), not too low.
    if measured_start and train_gain < FLAT_TOLERANCE and -eval_gain > RISE_TOLERANCE:
        return (
            "diverged",
            f"validation loss never came back to its {first_eval:.4g} before training "
            f"(best {eval_loss[best]:.4g}, last {eval_loss[-1]:.4g}) while training loss "
            f"went {first_train:.4g} -> {train_loss[-1]:.4g}",
        )
    if train_gain < FLAT_TOLERANCE and eval_gain < FLAT_TOLERANCE:
        return (
            "not_learning",
            f"training loss {first_train:.4g} ({since}) -> {train_loss[-1]:.4g} and "
            f"validation {first_eval:.4g} -> best {eval_loss[best]:.4g} over "
            f"{len(eval_loss)} epochs (under {FLAT_TOLERANCE:.0%} better)",
        )
    rose = eval_loss[-1] > eval_loss[best] * (1 + RISE_TOLERANCE)
    if best < len(eval_loss) - 1 and rose and train_loss[-1] < train_loss[best]:
        return (
            "overfitting",
            f"validation loss was lowest at epoch {best + 1} ({eval_loss[best]:.4g}) and "
            f"rose to {eval_loss[-1]:.4g} by epoch {len(eval_loss)} while training loss "
            f"fell from {train_loss[best]:.4g} to {train_loss[-1]:.4g}",
        )
    return None


def diagnose_trial(
    trial: optuna.trial.FrozenTrial, *, dropout: float | None = None
) -> list[Diagnosis]:
    """Diagnose every seed of a trial hptune ran (its ``runs`` and ``hparams`` attributes).

    Args:
        trial: A trial of a phase's study.
        dropout: The LoRA dropout that ran (for the overfitting remedy).

    Returns:
        One diagnosis per seed; one ``out_of_memory`` diagnosis when the trial ran out of
        memory; none without curves.
    """
    attrs = trial.user_attrs
    hp = HParams.from_dict(attrs[keys.HPARAMS]) if keys.HPARAMS in attrs else None
    if keys.is_oom(trial):
        changes, text = remedy_for("out_of_memory", hp)
        message = attrs.get(keys.OOM, {}).get("message", "")
        return [Diagnosis("out_of_memory", f"out of memory: {message[:120]}", changes, text)]
    diagnoses = []
    for run in attrs.get(keys.RUNS, []):
        epochs = run.get("epochs", [])
        diagnoses.append(
            diagnose_curves(
                [e["train_loss"] for e in epochs],
                [e["eval_loss"] for e in epochs],
                hparams=hp,
                dropout=dropout,
                diverged_at=run.get("diverged_at") if run.get("diverged") else None,
                seed=run.get("seed"),
                initial_eval_loss=run.get("initial_eval_loss"),
            )
        )
    return diagnoses


def diagnose(
    target: Any, *, hparams: HParams | None = None, dropout: float | None = None
) -> list[Diagnosis] | dict[int, list[Diagnosis]]:
    """Diagnose a trial, a study, or raw curves.

    * an ``optuna.trial.FrozenTrial`` run by hptune: one diagnosis per seed;
    * an ``optuna.Study``: ``{trial number: diagnoses}`` for every trial with curves;
    * a mapping with ``train_loss`` and ``eval_loss`` lists (and optionally ``diverged_at``):
      a one-element list, with remedies computed from ``hparams``.

    Args:
        target: A trial, a study, or a dict of curves.
        hparams: The configuration that ran (curves only; a trial records its own).
        dropout: The LoRA dropout that ran (for the overfitting remedy).

    Returns:
        The diagnoses: a list, or a dict of lists by trial number for a study.

    Raises:
        TypeError: A target that is none of these.
        ValueError: Curves of different lengths.
    """
    if isinstance(target, dict):
        return [
            diagnose_curves(
                target["train_loss"],
                target["eval_loss"],
                hparams=hparams,
                dropout=dropout,
                diverged_at=target.get("diverged_at"),
            )
        ]
    if hasattr(target, "get_trials"):
        return {
            t.number: diagnose_trial(t, dropout=dropout)
            for t in target.get_trials(deepcopy=False)
            if keys.RUNS in t.user_attrs or keys.is_oom(t)
        }
    if hasattr(target, "user_attrs"):
        return diagnose_trial(target, dropout=dropout)
    raise TypeError(f"cannot diagnose a {type(target).__name__}; give a trial, study or curves")


def overfit_epochs(diagnoses: Sequence[Diagnosis]) -> list[int]:
    """The best epochs of the seeds diagnosed as overfitting, when most seeds are.

    Args:
        diagnoses: One configuration's seeds, diagnosed.

    Returns:
        Each overfitting seed's best validation epoch; empty unless most seeds overfit.
    """
    over = [d for d in diagnoses if d.kind == "overfitting"]
    if not diagnoses or 2 * len(over) <= len(diagnoses):
        return []
    return [int(d.remedy["training.epochs"]) for d in over if "training.epochs" in d.remedy]
