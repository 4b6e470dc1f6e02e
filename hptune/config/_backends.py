"""What each training backend declares: its name in ``training.backend``, whose rules
tokenize its data, whether it trains a trial's seeds together, and which ``training.args``
keys and optimizers it honours.

The declarations live here, in the configuration's layer, because the configuration checks
them before anything trains (it cannot import ``hptune.train``, a layer above it); each backend
class points to its own (``RunnerBase.declared``), and `hptune.train.make_runner` picks the
class by it. A backend is its runner module, its declaration here and its docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ACCELERATE", "BACKENDS", "SFT", "TRAINER", "TRAIN_FN", "BackendName", "Declared"]

#: ``training.backend``'s values: the names in `BACKENDS` (a test keeps the two equal).
BackendName = Literal["accelerate", "trainer", "sft"]


@dataclass(frozen=True)
class Declared:
    """A training backend's capabilities, read by the configuration and by ``make_runner``.

    Attributes:
        name: Its name in ``training.backend``.
        label: How messages name it (``hptune's own loop``).
        tokenization: The rules ``data.tokenization: auto`` resolves to: ``hptune`` renders
            each piece itself, ``trl`` hands the raw records over as TRL's SFTTrainer takes
            them.
        seeds_together: Whether it trains a trial's seeds together as stacked adapters.
        arguments: The class whose keys ``training.args`` holds: ``TrainingArguments`` or
            ``SFTConfig``.
        honoured_args: The ``training.args`` keys it honours; None: every key of
            ``arguments``.
        optimizers: The ``training.optim`` names it trains with; None: every Trainer
            optimizer.
        requires: The module it needs installed, and the message when it is missing.
    """

    name: str
    label: str
    tokenization: Literal["hptune", "trl"] = "hptune"
    seeds_together: bool = False
    arguments: Literal["TrainingArguments", "SFTConfig"] = "TrainingArguments"
    honoured_args: tuple[str, ...] | None = None
    optimizers: tuple[str, ...] | None = None
    requires: tuple[str, str] | None = None


ACCELERATE = Declared(
    name="accelerate",
    label="hptune's own loop",
    seeds_together=True,
    honoured_args=("adam_beta1", "adam_beta2", "adam_epsilon", "lr_scheduler_kwargs"),
    optimizers=("adamw_torch", "adamw_torch_fused"),
)
TRAINER = Declared(name="trainer", label="the Trainer")
SFT = Declared(
    name="sft",
    label="TRL's SFTTrainer",
    tokenization="trl",
    arguments="SFTConfig",
    requires=(
        "trl",
        "the sft backend trains with TRL's SFTTrainer, which is not installed; pip install "
        "'hptune[sft]' (or trl), or use backend: trainer",
    ),
)
#: Every backend ``training.backend`` names, by name (the first is the default).
BACKENDS = {backend.name: backend for backend in (ACCELERATE, TRAINER, SFT)}
#: The user's own training (``train_fn``), which no ``training.backend`` names.
TRAIN_FN = Declared(name="train_fn", label="your train_fn")
