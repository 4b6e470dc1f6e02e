"""Whether a run's seeds (``training.seeds_together``) and a phase's candidates
(``training.candidates_together``) can train together, and why not."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hptune.config._backends import BACKENDS

if TYPE_CHECKING:
    from hptune.config._sections import MethodConfig, TrainingConfig

__all__ = ["groups_candidates", "trains_together", "why_not_together"]


def why_not_together(method: MethodConfig, training: TrainingConfig) -> str | None:
    """Why the configuration's seeds cannot train together; None when they can.

    Seeds train together as K LoRA adapters over one frozen base in hptune's own loop, so
    what trains the base, trains each seed elsewhere or measures one seed at a time blocks it.

    Args:
        method: The run's method section.
        training: The run's training section.

    Returns:
        The reason in a few words, or None.
    """
    backend = BACKENDS[training.backend]
    together = " or ".join(b.name for b in BACKENDS.values() if b.seeds_together)
    reasons = [
        (method.type == "full", "full fine-tuning trains the base itself (method.type: full)"),
        (training.train_fn is not None, "training.train_fn trains each seed itself"),
        (training.trainer_factory is not None, "training.trainer_factory trains each seed"),
        (
            not backend.seeds_together,
            f"backend {backend.name} trains one seed per Trainer (seeds train together in "
            f"hptune's loop: backend {together})",
        ),
        (
            method.loraplus_lr_ratio is not None,
            "LoRA+ (method.loraplus_lr_ratio) gives A and B rates of their own",
        ),
        (
            training.eval_steps is not None,
            "looks within an epoch (training.eval_steps) measure one seed at a time",
        ),
        (bool(training.report_to), "trackers (training.report_to) log one seed's run each"),
        (bool(method.lora.get("use_dora")), "DoRA (method.lora.use_dora) is no plain LoRA"),
        (
            bool(method.lora.get("lora_bias")),
            "a LoRA bias (method.lora.lora_bias) is no plain LoRA",
        ),
        (
            method.type == "lora" and not method.reuses_base(),
            "method.lora trains or rewrites base weights (modules_to_save, bias, PiSSA or LoftQ)",
        ),
    ]
    return next((why for blocked, why in reasons if blocked), None)


def trains_together(method: MethodConfig, training: TrainingConfig, n_seeds: int) -> bool:
    """Whether the run's trials train their seeds together: ``training.seeds_together`` is
    true, or ``auto`` and nothing blocks it (`why_not_together`), and there are two seeds.

    Args:
        method: The run's method section.
        training: The run's training section.
        n_seeds: The seeds of a trial.

    Returns:
        True when they do.
    """
    wanted = training.seeds_together or training.candidates_together
    if not wanted or n_seeds < 2:
        return False
    return why_not_together(method, training) is None


def groups_candidates(method: MethodConfig, training: TrainingConfig) -> bool:
    """Whether a phase's trials may train in one stack (``training.candidates_together``
    true, or ``auto`` and nothing blocks it): their seeds then train together too.

    Args:
        method: The run's method section.
        training: The run's training section.

    Returns:
        True when they may.
    """
    if not training.candidates_together:
        return False
    return why_not_together(method, training) is None
