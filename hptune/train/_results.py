"""What a training run measured: each epoch's metrics, and the whole run of one seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hptune.hparams import HParams


@dataclass
class EpochMetrics:
    """What one epoch of one seed measured."""

    epoch: int
    train_loss: float
    eval_loss: float
    #: The text metric on the validation subset (``None`` when the metric is the loss).
    score: float | None
    learning_rate: float
    test_loss: float | None = None  # only in the final evaluation, never for decisions
    test_score: float | None = None
    #: The objective's value at each ``training.eval_steps`` look within this epoch, before
    #: its end (what the pruner saw; a resumed run replays them).
    looks: list[float] = field(default_factory=list)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochMetrics:
        """Read back ``asdict``; runs stored before text metrics had ``bleu`` / ``test_bleu``."""
        renamed = {"bleu": "score", "test_bleu": "test_score"}
        return cls(**{renamed.get(k, k): v for k, v in values.items()})

    def logged(self) -> dict[str, float]:
        """The measured values a tracker logs (not the epoch, the looks, or what is unset)."""
        skip = ("epoch", "looks")
        return {k: v for k, v in asdict(self).items() if v is not None and k not in skip}

    def metric(self, name: str) -> float:
        """The value of ``eval_loss`` or, for any other metric name, the text metric's."""
        value = self.eval_loss if name == "eval_loss" else self.score
        if value is None:
            raise ValueError(f"metric {name!r} was not computed for epoch {self.epoch}")
        return value


@dataclass
class RunResult:
    """A whole run of one seed."""

    seed: int
    epochs: list[EpochMetrics] = field(default_factory=list)
    diverged: bool = False
    diverged_at: str | None = None
    stopped_early: bool = False  # the epoch callback asked to stop (early stopping, pruning)
    initial_eval_loss: float | None = None  # validation loss before the first step
    seconds: float = 0.0
    train_examples: int = 0  # over all processes of a data-parallel run
    train_tokens: int = 0
    processes: int = 1  # data-parallel processes that trained it
    resumed_after: int = 0  # epochs restored from an interrupted run's checkpoint
    resumed_seconds: float = 0.0  # of ``seconds``, those the interrupted run trained

    def best_epoch(self, metric: str, direction: str) -> EpochMetrics:
        choose = min if direction == "minimize" else max
        return choose(self.epochs, key=lambda e: e.metric(metric))

    @property
    def examples_per_second(self) -> float:
        return self.train_examples / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / self.seconds if self.seconds else 0.0

    def prefix(self, epochs: int) -> RunResult:
        """The run its first ``epochs`` epochs would have been on their own, for a schedule
        whose rate does not depend on the length (``HParams.length_free``).

        Args:
            epochs: The shorter run's epochs.

        Returns:
            Those epochs, the time and examples in proportion; the whole run when it ended
            (stopped early, or diverged) at or before that epoch, as the shorter one would.
        """
        if len(self.epochs) < epochs or (self.diverged and len(self.epochs) <= epochs):
            return self
        share = epochs / len(self.epochs)
        return replace(
            self,
            epochs=self.epochs[:epochs],
            diverged=False,
            diverged_at=None,
            stopped_early=False,
            seconds=self.seconds * share,
            train_examples=round(self.train_examples * share),
            train_tokens=round(self.train_tokens * share),
            resumed_after=min(self.resumed_after, epochs),
            resumed_seconds=self.resumed_seconds * share,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunResult:
        """Read back `to_dict` (throughput is kept as rates over the same time)."""
        seconds = float(values.get("seconds", 0.0))
        return cls(
            seed=int(values["seed"]),
            epochs=[EpochMetrics.from_dict(e) for e in values["epochs"]],
            diverged=bool(values.get("diverged", False)),
            diverged_at=values.get("diverged_at"),
            stopped_early=bool(values.get("stopped_early", False)),
            initial_eval_loss=values.get("initial_eval_loss"),
            seconds=seconds,
            train_examples=round(float(values.get("examples_per_second", 0.0)) * seconds),
            train_tokens=round(float(values.get("tokens_per_second", 0.0)) * seconds),
            processes=int(values.get("processes", 1)),
            resumed_after=int(values.get("resumed_after", 0)),
            resumed_seconds=float(values.get("resumed_seconds", 0.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "epochs": [asdict(e) for e in self.epochs],
            "diverged": self.diverged,
            "diverged_at": self.diverged_at,
            "stopped_early": self.stopped_early,
            "initial_eval_loss": self.initial_eval_loss,
            "seconds": round(self.seconds, 3),
            "examples_per_second": round(self.examples_per_second, 2),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "processes": self.processes,
            "resumed_after": self.resumed_after,
            "resumed_seconds": round(self.resumed_seconds, 3),
        }


#: Called after each epoch with the seed and the epoch's metrics; returning False stops the run.
#: It may also have a ``look(seed, epoch, value, looks_per_epoch)`` method, called at each
#: ``training.eval_steps`` look within an epoch (returning False stops the run there too).
EpochCallback = Callable[[int, EpochMetrics], "bool | None"]


@dataclass
class RunJob:
    """One run a backend trains (`RunnerBase.train` builds it; a backend's ``train_job``
    trains it): a configuration, a seed, who hears of each epoch, and where it saves."""

    hp: HParams
    seed: int
    on_epoch: EpochCallback | None = None
    #: Measure the test split after every epoch too (the final evaluation).
    evaluate_test: bool = False
    #: ``<study>/trial-<n>``: where checkpoints and tracker logs go.
    run_name: str | None = None
    #: The checkpoints of an interrupted run of the same configuration and seed.
    resume_from: Path | None = None
    #: Where this run's epoch checkpoints go; None when they are off.
    checkpoint_dir: Path | None = None
