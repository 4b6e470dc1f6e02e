"""The debugging guide's remedies: a diagnosis kind turned into configuration changes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hptune.hparams import HParams

__all__ = ["remedy_for"]


def remedy_for(
    kind: str,
    hparams: HParams | None,
    *,
    dropout: float | None = None,
    curves: tuple[Sequence[float], Sequence[float]] | None = None,
) -> tuple[dict[str, Any], str]:
    """The debugging guide's remedy for ``kind``: configuration changes and a sentence.

    Args:
        kind: A diagnosis kind (``healthy`` has no remedy).
        hparams: The configuration that ran; without it, only the guide's advice.
        dropout: The LoRA dropout that ran (the overfitting remedy raises it).
        curves: The training and validation losses per epoch (the overfitting remedy stops
            at the best epoch).

    Returns:
        The changes by configuration key, and the remedy in words.

    Raises:
        KeyError: An unknown kind.
    """
    if kind == "healthy":
        return {}, ""
    if hparams is None:
        return {}, _GUIDE[kind]
    changes: dict[str, Any] = {}
    if kind == "diverged":
        changes["training.learning_rate"] = hparams.learning_rate / 10
        if hparams.max_grad_norm is None or hparams.max_grad_norm > 1.0:
            changes["training.max_grad_norm"] = 1.0
    elif kind == "not_learning":
        changes["training.learning_rate"] = hparams.learning_rate * 3
        changes["training.epochs"] = hparams.epochs + 1
    elif kind == "overfitting":
        if curves is not None and curves[1]:
            best = min(range(len(curves[1])), key=lambda i: curves[1][i])
            changes["training.epochs"] = best + 1
        changes["training.weight_decay"] = round(min(0.1, max(hparams.weight_decay * 3, 0.03)), 4)
        if dropout is not None:
            changes["method.dropout"] = round(min(dropout + 0.05, 0.3), 4)
    elif kind == "out_of_memory":
        if hparams.batch_size > 1:
            changes["training.batch_size"] = hparams.batch_size // 2
            changes["training.gradient_accumulation_steps"] = (
                hparams.gradient_accumulation_steps * 2
            )
        else:
            changes["method.type"] = "qlora"
    text = ", ".join(
        f"{key} {_current(key, hparams, dropout)} -> {_fmt(value)}"
        for key, value in changes.items()
    )
    return changes, text + f" ({_GUIDE[kind]})"


_GUIDE = {
    "diverged": "the guide: cut the learning rate to 1/10 and clip gradients",
    "not_learning": "the guide: raise the learning rate 2-3x, train more epochs",
    "overfitting": "the guide: early stopping, more weight decay, more dropout",
    "out_of_memory": "the guide: halve the batch, double gradient accumulation, or use QLoRA",
}


def _current(key: str, hparams: HParams, dropout: float | None) -> str:
    name = key.split(".", 1)[1]
    if name == "dropout":
        return _fmt(dropout)
    if name == "type":
        return "lora"
    return _fmt(getattr(hparams, name, None))


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
