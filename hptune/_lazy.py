"""Heavy dependencies imported on first use: the one place modules import them lazily.

Every heavy dependency is named once, below, typed for mypy and loaded when one of its
attributes is first read; a module imports it from here at its top::

    from hptune._lazy import optuna, torch

so that ``import hptune`` and the command line's start stay light (torch, transformers, peft,
accelerate, datasets and optuna take seconds to import) while every import stays at the top
of its module. A module of hptune's own that must load late (one that subclasses a heavy
class) is named with `LazyImport` where it is used.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

__all__ = ["LazyImport"]


# Optuna's optuna._imports._LazyImport is this class, but importing it imports optuna, which
# is one of the heavy modules this one exists to defer.
class LazyImport(types.ModuleType):
    """A module that imports itself the first time one of its attributes is read.

    Args:
        name: The module's full name, e.g. ``"torch"`` or ``"peft.tuners.lora"``.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._name = name

    def _load(self) -> types.ModuleType:
        module = importlib.import_module(self._name)
        self.__dict__.update(module.__dict__)
        return module

    def __getattr__(self, item: str) -> Any:
        return getattr(self._load(), item)


if TYPE_CHECKING:
    import accelerate
    import accelerate.data_loader as accelerate_data_loader
    import accelerate.utils as accelerate_utils
    import datasets
    import datasets.utils.logging as datasets_logging
    import filelock
    import matplotlib
    import matplotlib.figure as mpl_figure
    import matplotlib.ticker as ticker
    import numpy as np
    import optuna
    import optuna_dashboard
    import peft
    import peft.optimizers as peft_optimizers
    import safetensors.torch as safetensors_torch
    import scipy.stats as stats
    import sqlalchemy
    import tokenizers
    import torch
    import torch.utils.data as torch_data
    import transformers
    import transformers.optimization as transformers_optimization
    import transformers.trainer_utils as transformers_trainer_utils
    import trl
else:
    accelerate = LazyImport("accelerate")
    accelerate_data_loader = LazyImport("accelerate.data_loader")
    accelerate_utils = LazyImport("accelerate.utils")
    datasets = LazyImport("datasets")
    datasets_logging = LazyImport("datasets.utils.logging")
    filelock = LazyImport("filelock")
    matplotlib = LazyImport("matplotlib")
    mpl_figure = LazyImport("matplotlib.figure")
    ticker = LazyImport("matplotlib.ticker")
    np = LazyImport("numpy")
    optuna = LazyImport("optuna")
    optuna_dashboard = LazyImport("optuna_dashboard")
    peft = LazyImport("peft")
    peft_optimizers = LazyImport("peft.optimizers")
    safetensors_torch = LazyImport("safetensors.torch")
    stats = LazyImport("scipy.stats")
    sqlalchemy = LazyImport("sqlalchemy")
    tokenizers = LazyImport("tokenizers")
    torch = LazyImport("torch")
    torch_data = LazyImport("torch.utils.data")
    transformers = LazyImport("transformers")
    transformers_optimization = LazyImport("transformers.optimization")
    transformers_trainer_utils = LazyImport("transformers.trainer_utils")
    trl = LazyImport("trl")
