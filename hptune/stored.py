"""A stored trial, read in one place: its state, its storage id and its runs, typed.

Optuna's ``FrozenTrial`` gives the state as an enum whose names are upper-case strings, and no
public id of a trial in its storage (the storage API takes ``_trial_id``; ``number`` counts
within a study). Every module of hptune reads those two here, through `state_of` and
`trial_id`, and a trial's stored training runs through `StoredTrial.runs`, so that a change
in Optuna touches this module alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from hptune import keys

if TYPE_CHECKING:
    from collections.abc import Iterable

    from optuna.trial import BaseTrial, FrozenTrial

__all__ = [
    "State",
    "StoredRun",
    "StoredTrial",
    "count_states",
    "is_failed",
    "is_pending",
    "is_running",
    "is_scored",
    "state_of",
    "trial_id",
]

#: A trial's state as hptune names it (Optuna's ``TrialState`` names, lower-case).
State = Literal["waiting", "running", "complete", "pruned", "fail"]


def state_of(trial: FrozenTrial) -> State:
    """The trial's state, lower-case (``"complete"``, ``"pruned"``, ``"fail"``, ...)."""
    return cast("State", trial.state.name.lower())


def trial_id(trial: FrozenTrial | BaseTrial) -> int:
    """The trial's id in its storage (what ``BaseStorage`` methods take).

    Optuna keeps it private (``_trial_id``) and offers no public accessor; a worker needs it
    to claim, beat for and fail a trial that another process created.
    """
    return int(trial._trial_id)  # type: ignore[union-attr]


def is_scored(trial: FrozenTrial) -> bool:
    """Whether the trial finished with a value: complete, or pruned with its curves."""
    return state_of(trial) in ("complete", "pruned")


def is_pending(trial: FrozenTrial) -> bool:
    """Whether the trial is queued or training."""
    return state_of(trial) in ("waiting", "running")


def is_running(trial: FrozenTrial) -> bool:
    """Whether a worker is training the trial."""
    return state_of(trial) == "running"


def is_failed(trial: FrozenTrial) -> bool:
    """Whether the trial failed (out of memory, interrupted, over budget or an error)."""
    return state_of(trial) == "fail"


def count_states(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """How many trials are in each state, e.g. ``{"complete": 3, "fail": 1}``."""
    counts: dict[str, int] = {}
    for t in trials:
        counts[state_of(t)] = counts.get(state_of(t), 0) + 1
    return counts


@dataclass(frozen=True)
class StoredRun:
    """One seed's training run as a trial stored it (``keys.RUNS``).

    Attributes:
        seed: The seed.
        epochs: Epochs the run's curves hold.
        resumed_after: Epochs restored from an interrupted run's checkpoint (not trained by
            this run).
        seconds: Wall seconds of training, those of the interrupted run included.
        resumed_seconds: Of ``seconds``, those the interrupted run trained (its failed trial
            counts them).
        processes: Data-parallel processes (GPUs) that trained it.
        examples: Training examples seen, over all processes.
    """

    seed: int
    epochs: int
    resumed_after: int
    seconds: float
    resumed_seconds: float
    processes: int
    examples: float

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StoredRun:
        """Read one entry of ``keys.RUNS`` (``RunResult.to_dict()``)."""
        seconds = float(values.get("seconds", 0.0))
        return cls(
            seed=int(values["seed"]),
            epochs=len(values.get("epochs", [])),
            resumed_after=int(values.get("resumed_after", 0)),
            seconds=seconds,
            resumed_seconds=float(values.get("resumed_seconds", 0.0)),
            processes=int(values.get("processes", 1)),
            examples=float(values.get("examples_per_second", 0.0)) * seconds,
        )

    @property
    def trained_epochs(self) -> int:
        """The epochs this run trained itself."""
        return self.epochs - self.resumed_after

    @property
    def gpu_seconds(self) -> float:
        """The seconds this run trained itself, times the GPUs that trained."""
        return (self.seconds - self.resumed_seconds) * self.processes

    @property
    def trained_examples(self) -> float:
        """The examples this run trained itself (at its throughput), over all processes."""
        if self.seconds <= 0:
            return 0.0
        return self.examples * (self.seconds - self.resumed_seconds) / self.seconds


class StoredTrial:
    """A read-only, typed view of one stored trial.

    Args:
        frozen: The trial as the storage returns it.
    """

    def __init__(self, frozen: FrozenTrial) -> None:
        self.frozen = frozen

    @property
    def id(self) -> int:
        """The trial's id in its storage (see `trial_id`)."""
        return trial_id(self.frozen)

    @property
    def state(self) -> State:
        """The trial's state (see `state_of`)."""
        return state_of(self.frozen)

    @property
    def reused(self) -> bool:
        """Whether its runs were read back from an earlier trial instead of trained."""
        return keys.REUSED_FROM in self.frozen.user_attrs

    @property
    def runs(self) -> list[StoredRun] | None:
        """Its seeds' stored training runs; None when it failed or was interrupted before
        they were stored."""
        runs = self.frozen.user_attrs.get(keys.RUNS)
        return None if runs is None else [StoredRun.from_dict(r) for r in runs]

    @property
    def unstored_epochs(self) -> int:
        """Epochs its seeds' validation curves recorded (``keys.SEED_CURVES``) for seeds whose
        run was not stored (the trial failed, ran out of memory or was interrupted in it)."""
        stored_seeds = {run.seed for run in self.runs or []}
        curves = self.frozen.user_attrs.get(keys.SEED_CURVES, [])
        # With looks within epochs a curve has several positions per epoch; an epoch begun
        # counts whole (the budget errs on the side of what was spent).
        per_epoch = int(self.frozen.user_attrs.get(keys.LOOKS_PER_EPOCH, 1))
        return sum(
            -(-len(values) // per_epoch) for seed, values in curves if int(seed) not in stored_seeds
        )
