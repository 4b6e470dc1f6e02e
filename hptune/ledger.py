"""What a run has trained, read from its storage, and the ledger that keeps it to its budget.

Before a trial starts, `BudgetLedger` counts what every study of the run has trained
(`trained_so_far`) and refuses the trial when the rest of ``budget`` cannot finish it;
``hptune.budget`` fits the phases into the budget before the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.stored import StoredTrial

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig

__all__ = ["BudgetLedger", "trained_so_far"]


def trained_so_far(
    config: TuneConfig,
    storage: optuna.storages.BaseStorage,
    *,
    running_cost: Any = None,
    exclude: int | None = None,
) -> dict[str, float]:
    """What every study of the run has trained, from its storage.

    Args:
        config: The run's configuration (its study names).
        storage: The run's storage.
        running_cost: ``f(frozen_trial) -> seed-epochs`` to reserve for each running trial.
        exclude: The id of a trial to leave out (the one asking).

    Returns:
        ``seed_epochs``, ``gpu_seconds`` (training seconds x data-parallel processes),
        ``examples`` (over all processes), ``measured_gpu_seconds`` (the GPU seconds of the
        stored runs alone, those ``examples`` were trained in) and ``reserved`` (the running
        trials' seed-epochs). A trial that failed or was interrupted before its runs were
        stored is counted by the epochs its curves recorded, at the run's mean GPU seconds
        per seed-epoch (in ``gpu_seconds``, never in the measured throughput).
    """
    names = ("seed_epochs", "gpu_seconds", "examples", "measured_gpu_seconds", "reserved")
    totals = dict.fromkeys(names, 0.0)
    unstored = 0
    for phase in (*config.phases.run, "final"):
        try:
            study_id = storage.get_study_id_from_name(config.study_name(phase))
        except KeyError:  # not started yet
            continue
        for trial in map(StoredTrial, storage.get_all_trials(study_id, deepcopy=False)):
            if trial.id == exclude or trial.reused:
                continue
            if trial.state == "running":
                totals["reserved"] += running_cost(trial.frozen) if running_cost is not None else 0
                continue
            # a seed failed or interrupted mid-run: what its curves recorded
            unstored += trial.unstored_epochs
            for run in trial.runs or []:  # what each stored run trained itself
                totals["seed_epochs"] += run.trained_epochs
                totals["gpu_seconds"] += run.gpu_seconds
                totals["examples"] += run.trained_examples
    totals["measured_gpu_seconds"] = totals["gpu_seconds"]
    if unstored and totals["seed_epochs"]:
        totals["gpu_seconds"] += unstored * totals["gpu_seconds"] / totals["seed_epochs"]
    totals["seed_epochs"] += unstored
    return totals


class BudgetLedger:
    """What a run has trained so far, read from its storage, against its budget.

    Counted from every study of the run (`trained_so_far`): each stored seed run's
    epochs (less those restored from a checkpoint) and seconds (times its data-parallel
    processes), leaving out trials read back from an earlier one; a running trial (another
    worker's) is counted at its full cost, so workers do not both take the last of the
    budget. GPU hours count training time; validation, generation and loading add to it.

    Args:
        config: The run's (fitted) configuration: ``budget`` and the study names.
        storage: The run's storage.
        n_train: Training examples (an epoch's examples, for GPU hours).
        examples_per_second: The throughput to expect before any run is measured.
    """

    def __init__(
        self,
        config: TuneConfig,
        storage: optuna.storages.BaseStorage,
        n_train: int,
        examples_per_second: float | None = None,
    ) -> None:
        assert config.budget is not None, "a ledger needs a budget"
        self.config = config
        self.budget = config.budget
        self.storage = storage
        self.n_train = n_train
        self.estimate = examples_per_second or self.budget.examples_per_second

    def spent(self, *, running_cost: Any = None, exclude: int | None = None) -> dict[str, float]:
        """What the storage holds so far (see `trained_so_far`)."""
        return trained_so_far(self.config, self.storage, running_cost=running_cost, exclude=exclude)

    def examples_per_second(self, spent: dict[str, float]) -> tuple[float, str] | None:
        """Examples per GPU-second: measured once runs are stored (their examples over their
        own seconds), else the estimate."""
        if spent["measured_gpu_seconds"] > 0 and spent["examples"] > 0:
            return spent["examples"] / spent["measured_gpu_seconds"], "measured"
        return None if self.estimate is None else (self.estimate, "estimated")

    def refusal(
        self, seed_epochs: int, *, exclude: int | None = None, running_cost: Any = None
    ) -> str | None:
        """Why a trial of ``seed_epochs`` at most may not start; None when it may.

        Args:
            seed_epochs: The trial's cost at most (its seeds x its most epochs).
            exclude: The asking trial's id.
            running_cost: ``f(frozen_trial) -> seed-epochs`` of another worker's trial.

        Returns:
            The reason, in words, or None.
        """
        spent = self.spent(running_cost=running_cost, exclude=exclude)
        if self.budget.seed_epochs is not None:
            left = self.budget.seed_epochs - spent["seed_epochs"] - spent["reserved"]
            if seed_epochs <= left:
                return None
            return (
                f"it needs up to {seed_epochs} seed-epochs and {left:g} of the budget's "
                f"{self.budget.seed_epochs} are left"
            )
        assert self.budget.gpu_hours is not None
        throughput = self.examples_per_second(spent)
        if throughput is None:
            return None  # nothing measured and no estimate: the first trial measures it
        rate, how = throughput
        per_seed_epoch = self.n_train / rate
        need = seed_epochs * per_seed_epoch
        left = self.budget.gpu_hours * 3600 - spent["gpu_seconds"]
        left -= spent["reserved"] * per_seed_epoch
        if need <= left:
            return None
        return (
            f"it needs up to {need / 3600:.3g} GPU hours ({seed_epochs} seed-epochs at the "
            f"{how} {rate:.4g} examples/s) and {max(left, 0) / 3600:.3g} of the budget's "
            f"{self.budget.gpu_hours:g} are left"
        )
