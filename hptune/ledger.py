"""What a run has trained, read from its storage, and the ledger that keeps it to its budget.

Before a trial starts, `BudgetLedger` counts what every study of the run has trained
(`trained_so_far`) and refuses the trial when the rest of ``budget`` cannot finish it;
racing asks it what is left (`BudgetLedger.left`) before it queues a paired seed.
``hptune.budget`` fits the phases into the budget before the run; `trained_by_phase` says
what each phase trained.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune.stored import StoredTrial

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig

__all__ = ["BudgetLedger", "trained_by_phase", "trained_so_far"]


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
    for _, trial in _stored_trials(config, storage):
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


def trained_by_phase(
    config: TuneConfig, storage: optuna.storages.BaseStorage
) -> dict[str, dict[str, float]]:
    """What each phase of the run has trained, counted as `trained_so_far` counts it.

    Args:
        config: The run's configuration (its study names).
        storage: The run's storage.

    Returns:
        ``{phase: {"seed_epochs": ..., "racing": ..., "spare": ..., "rate_probes": ...}}``
        for each phase started, in the order they run: its seed-epochs trained (trials read
        back and running ones left out), and the parts its racing trials, its spare trials
        and its rate probes trained.
    """
    parts = {"racing": keys.RACE_OF, "spare": keys.SPARE, "rate_probes": keys.RATE_PROBE}
    spent: dict[str, dict[str, float]] = {}
    for phase, trial in _stored_trials(config, storage):
        row = spent.setdefault(phase, {"seed_epochs": 0.0, **dict.fromkeys(parts, 0.0)})
        if trial.reused or trial.state == "running":
            continue
        epochs = trial.unstored_epochs + sum(run.trained_epochs for run in trial.runs or [])
        row["seed_epochs"] += epochs
        for part, key in parts.items():
            if key in trial.frozen.user_attrs:
                row[part] += epochs
    return spent


def _stored_trials(
    config: TuneConfig, storage: optuna.storages.BaseStorage
) -> Iterator[tuple[str, StoredTrial]]:
    """Every trial of every study of the run started so far, with its phase's name."""
    for phase in (*config.phases.run, "final"):
        try:
            study_id = storage.get_study_id_from_name(config.study_name(phase))
        except KeyError:  # not started yet
            continue
        for trial in storage.get_all_trials(study_id, deepcopy=False):
            yield phase, StoredTrial(trial)


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
        has_test: Whether the data has a test split (the final evaluation runs, and racing
            leaves it its share of the budget).
    """

    def __init__(
        self,
        config: TuneConfig,
        storage: optuna.storages.BaseStorage,
        n_train: int,
        examples_per_second: float | None = None,
        *,
        has_test: bool = True,
    ) -> None:
        assert config.budget is not None, "a ledger needs a budget"
        self.config = config
        self.budget = config.budget
        self.storage = storage
        self.n_train = n_train
        self.estimate = examples_per_second or self.budget.examples_per_second
        self.has_test = has_test

    def spent(self, *, running_cost: Any = None, exclude: int | None = None) -> dict[str, float]:
        """What the storage holds so far (see `trained_so_far`)."""
        return trained_so_far(self.config, self.storage, running_cost=running_cost, exclude=exclude)

    def running_cost(self, trial: optuna.trial.FrozenTrial) -> int:
        """Seed-epochs a running trial may still take (its whole cost, at most): its seeds
        (a racing trial's own) x the epochs it recorded at its start."""
        seeds = trial.user_attrs.get(keys.RACE_SEEDS) or self.config.objective.seed_list
        return len(seeds) * int(trial.user_attrs.get(keys.HPARAMS, {}).get("epochs", 0))

    def started(self, phase: str) -> bool:
        """Whether ``phase``'s study exists in the storage (a worker started it)."""
        try:
            self.storage.get_study_id_from_name(self.config.study_name(phase))
        except KeyError:
            return False
        return True

    def left(self, *, later: float = 0) -> float:
        """Seed-epochs the budget has left: less what the storage holds as trained, the
        running trials at their whole cost, and ``later``.

        GPU hours are converted at the measured throughput (else the estimate).

        Args:
            later: Seed-epochs to keep for what comes after (the phases still to come).

        Returns:
            The seed-epochs left (below 0 when ``later`` cannot be paid in full); infinite
            for GPU hours with nothing measured and no estimate.
        """
        spent = self.spent(running_cost=self.running_cost)
        if self.budget.seed_epochs is not None:
            return self.budget.seed_epochs - spent["seed_epochs"] - spent["reserved"] - later
        assert self.budget.gpu_hours is not None
        throughput = self.examples_per_second(spent)
        if throughput is None:
            return math.inf  # nothing to convert at: each trial's start checks again
        seconds = self.budget.gpu_hours * 3600 - spent["gpu_seconds"]
        return seconds * throughput[0] / self.n_train - spent["reserved"] - later

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
