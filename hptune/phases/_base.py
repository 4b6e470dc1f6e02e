"""What every phase is: a search space with its sampler, a budget, and a way to decide."""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hptune.hparams import HParams
from hptune.seeds import PairedDifference, paired_difference

if TYPE_CHECKING:
    import optuna

__all__ = [
    "DECISION_ATTR",
    "Decision",
    "NoiseRanking",
    "Phase",
    "TrialOutcome",
    "rank_within_noise",
]

#: The study user attribute that holds a phase's decision (JSON); its presence means "done".
DECISION_ATTR = "hptune.decision"


@dataclass(frozen=True)
class TrialOutcome:
    """A finished trial as phases see it: its parameters and its value on every seed."""

    number: int
    params: dict[str, Any]
    seed_values: dict[int, float]  # empty when the trial diverged or failed
    status: str  # "ok", "diverged" or "failed"

    @property
    def mean(self) -> float | None:
        if not self.seed_values:
            return None
        return sum(self.seed_values.values()) / len(self.seed_values)


@dataclass(frozen=True)
class Decision:
    """What a phase fixes for the phases after it, with its evidence and the rule applied.

    ``case`` names the branch of the decision rule (for example ``clear_winner`` or
    ``tie_within_noise``) so that a reader knows how much the evidence supports it.
    """

    phase: str
    params: dict[str, Any]
    value: float | None
    case: str
    reason: str
    summary: dict[str, Any] = field(default_factory=dict)

    def apply(self, hp: HParams) -> HParams:
        return hp.replace(**self.params)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Decision:
        return cls(**json.loads(text))


class Phase(abc.ABC):
    """One step of the method: which configurations to try, and how to decide among them.

    A phase never trains anything itself: the pipeline asks it for a sampler and a budget,
    runs its trials through the shared objective, then hands it the finished trials.
    """

    name: ClassVar[str]

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        """The sampler of this phase's study (default: Optuna's default)."""
        import optuna

        return optuna.samplers.TPESampler(seed=0)

    @abc.abstractmethod
    def n_trials(self) -> int:
        """How many trials the phase runs in all."""

    def n_remaining(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        """How many trials are still to run, given the study's trials so far.

        Only complete and pruned trials count as done: a failed or interrupted trial is run
        again by the next ``hptune run``.
        """
        return max(self.n_trials() - len(_done(trials)), 0)

    def to_retry(self, trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
        """Failed trials to queue again, for phases whose sampler would not revisit them."""
        return []

    @abc.abstractmethod
    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        """The configuration of ``trial``: ``base`` with this phase's suggestions applied."""

    @abc.abstractmethod
    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        """Choose from the finished trials; ``direction`` is ``minimize`` or ``maximize``."""


def _done(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


@dataclass(frozen=True)
class NoiseRanking:
    """The best trial, the trials statistically tied with it, and each one's paired gap."""

    best: TrialOutcome
    tied: list[TrialOutcome]  # includes ``best``
    gaps: dict[int, PairedDifference]  # trial number -> (trial - best), oriented "worse > 0"


def rank_within_noise(outcomes: list[TrialOutcome], direction: str) -> NoiseRanking:
    """Find the best trial by seed mean and those whose paired gap to it is within seed noise.

    A trial is tied with the best when the 95% interval of its seed-by-seed difference from
    the best contains zero. With a single seed there is no interval, so only the best counts.
    """
    ok = [o for o in outcomes if o.status == "ok" and o.seed_values]
    if not ok:
        raise ValueError("no finished trial to rank")
    sign = 1.0 if direction == "minimize" else -1.0
    best = min(ok, key=lambda o: sign * (o.mean or 0.0))
    gaps: dict[int, PairedDifference] = {}
    tied = [best]
    for other in ok:
        if other is best:
            continue
        oriented = {s: sign * v for s, v in other.seed_values.items()}
        reference = {s: sign * v for s, v in best.seed_values.items()}
        gap = paired_difference(oriented, reference)
        gaps[other.number] = gap
        if gap.ci_low is not None and not gap.excludes_zero:
            tied.append(other)
    return NoiseRanking(best, tied, gaps)
