from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

__all__ = ["epoch_pruner"]


def epoch_pruner(
    *, n_startup_trials: int = 2, n_warmup_steps: int = 2
) -> optuna.pruners.BasePruner:
    """The median pruner of the epoch and regularization phases.

    hptune reports one value per seed and epoch at step ``seed_index x max_epochs + epoch``:
    the mean over the seeds trained so far of each seed's best value up to that epoch. A trial
    is thus compared with the others at the same seed and epoch (a paired comparison), and
    can be stopped after its first seed, where stopping saves the most. The first
    ``n_startup_trials`` trials always finish, and nothing is pruned before step
    ``n_warmup_steps`` (by default the first seed's first epoch, which is noisy).

    Args:
        n_startup_trials: Trials that always run to their end.
        n_warmup_steps: Steps before which no trial is pruned.

    Returns:
        Optuna's ``MedianPruner`` with these settings.

    Raises:
        ValueError: A negative count.
    """
    import optuna

    if n_startup_trials < 0 or n_warmup_steps < 0:
        raise ValueError(f"counts must not be negative, got {n_startup_trials=}, {n_warmup_steps=}")
    return optuna.pruners.MedianPruner(
        n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
    )
