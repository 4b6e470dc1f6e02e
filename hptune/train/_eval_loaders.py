"""A run's evaluation batches: the validation split, its measure before training, and the
test split's, each on the run's device."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from hptune._lazy import torch, torch_data

__all__ = ["EvalLoaders", "eval_loaders"]


class EvalLoaders:
    """A run's evaluation batches: validation, the pre-training measure, and test."""

    def __init__(self, validation: Any, initial: Any, test: Any) -> None:
        self.validation = validation
        self.initial = initial
        self.test = test


class _OnDevice:
    """Iterate a DataLoader with each batch moved to ``device``."""

    def __init__(self, loader: Any, device: Any) -> None:
        self.loader = loader
        self.device = device

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            yield {k: v.to(self.device) for k, v in batch.items()}


def eval_loaders(
    validation: Any, test: Any, collate: Callable[..., Any], batch_size: int, device: Any
) -> EvalLoaders:
    """The evaluation batches of a run on ``device``.

    Args:
        validation: The tokenized validation split.
        test: The tokenized test split, or None (not measured).
        collate: Pads a batch.
        batch_size: The run's batch size (at least 16 are measured at once).
        device: Where the batches go.

    Returns:
        Validation at the run's size, the pre-training measure at 16, test at the run's.
    """
    size = max(batch_size, 16)

    def on_device(dataset: Any, batch_size: int, fixed: bool) -> _OnDevice:
        # A fixed generator keeps iterating it off the global random state, which drives
        # dropout. The validation loader draws from the global state on purpose: so does
        # the Trainer's, and the two backends then train alike.
        generator = torch.Generator().manual_seed(0) if fixed else None
        loader = torch_data.DataLoader(
            dataset, batch_size=batch_size, collate_fn=collate, generator=generator
        )
        return _OnDevice(loader, device)

    return EvalLoaders(
        validation=on_device(validation, size, fixed=False),
        # Every run starts from the same function (the pretrained model; a new LoRA
        # adapter adds exactly zero), so it is measured once per runner, at batch 16.
        initial=on_device(validation, 16, fixed=True),
        test=on_device(test, size, fixed=True) if test is not None else None,
    )
