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
    "grid_remaining",
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
    status: str  # "ok", "diverged", "pruned", "oom" or "failed"
    examples_per_second: float | None = None
    tokens_per_second: float | None = None
    test_values: dict[int, float] = field(default_factory=dict)  # final evaluation only
    diagnoses: tuple[str, ...] = ()  # each seed's curve diagnosis (hptune.diagnose)

    @property
    def diagnosis(self) -> str | None:
        """The most common diagnosis over the seeds, or None without curves."""
        if not self.diagnoses:
            return None
        return max(set(self.diagnoses), key=self.diagnoses.count)

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
    #: How often a failed trial is queued again with the same parameters.
    max_retries: int = 2
    #: Whether trials also measure the test split (only the final evaluation does).
    evaluate_test: ClassVar[bool] = False
    #: Why this phase was set up as it was (e.g. a range moved by a diagnosis); added to
    #: the decision's reason.
    notes: tuple[str, ...] = ()

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        """The sampler of this phase's study (default: Optuna's default)."""
        import optuna

        return optuna.samplers.TPESampler(seed=0)

    def create_pruner(self) -> optuna.pruners.BasePruner:
        """The pruner of this phase's study (default: none; every trial runs to its end)."""
        import optuna

        return optuna.pruners.NopPruner()

    def max_epochs(self, base: HParams) -> int:
        """The most epochs a trial of this phase trains (the stride of its report steps)."""
        return base.epochs

    def initial_params(self, base: HParams) -> list[dict[str, Any]]:
        """Parameters to queue when the study starts (e.g. the incoming configuration)."""
        return []

    @abc.abstractmethod
    def n_trials(self) -> int:
        """How many trials the phase runs in all."""

    def n_remaining(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        """How many trials are still to run or running, given the study's trials so far.

        Complete and pruned trials are done; a failed one is done once its retries are used
        up or when it ran out of memory; any other failed or interrupted trial is run again.
        """
        return max(self.n_trials() - _n_settled(trials, self.max_retries), 0)

    def to_retry(self, trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
        """Failed trials to queue again with the same parameters (at most ``max_retries``)."""
        settled = {_key(t.params) for t in trials if _is_done(t)}
        planned = {_key(t.params) for t in trials if t.state.name in ("WAITING", "RUNNING")}
        retry: dict[str, optuna.trial.FrozenTrial] = {}
        for t in trials:
            key = _key(t.params)
            if (
                t.state.name == "FAIL"
                and not _is_oom(t)
                and key not in settled
                and key not in planned
                and _n_failures(trials, key) <= self.max_retries
            ):
                retry[key] = t
        return list(retry.values())

    @abc.abstractmethod
    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        """The configuration of ``trial``: ``base`` with this phase's suggestions applied."""

    @abc.abstractmethod
    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        """Choose from the finished trials; ``direction`` is ``minimize`` or ``maximize``."""


def _done(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _is_done(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state.name in ("COMPLETE", "PRUNED")


def _is_oom(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state.name == "FAIL" and trial.user_attrs.get("status") == "oom"


def _n_failures(trials: list[optuna.trial.FrozenTrial], key: str) -> int:
    """Failures of a parameter set that use up its retries (an interruption does not)."""
    return sum(
        1
        for t in trials
        if t.state.name == "FAIL"
        and _key(t.params) == key
        and t.user_attrs.get("status") != "interrupted"
    )


def _settled_keys(trials: list[optuna.trial.FrozenTrial], max_retries: int) -> set[str]:
    """Parameter sets that will not run again: done, out of memory, or out of retries."""
    keys = {_key(t.params) for t in trials if _is_done(t) or _is_oom(t)}
    for t in trials:
        if t.state.name == "FAIL" and _n_failures(trials, _key(t.params)) > max_retries:
            keys.add(_key(t.params))
    return keys


def _n_settled(trials: list[optuna.trial.FrozenTrial], max_retries: int) -> int:
    """Trials that count against the budget: done, out of memory, or failed for good."""
    exhausted = {
        _key(t.params)
        for t in trials
        if t.state.name == "FAIL"
        and not _is_oom(t)
        and _n_failures(trials, _key(t.params)) > max_retries
        and not any(_is_done(o) and _key(o.params) == _key(t.params) for o in trials)
    }
    return sum(1 for t in trials if _is_done(t) or _is_oom(t)) + len(exhausted)


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


def grid_remaining(
    trials: list[optuna.trial.FrozenTrial], param: str, grid: list[Any], max_retries: int
) -> int:
    """Grid points of ``param`` that are neither done nor failed for good."""
    settled = _settled_keys(trials, max_retries)
    settled_values = {
        t.params.get(param) for t in trials if _key(t.params) in settled and param in t.params
    }
    return sum(1 for value in grid if value not in settled_values)
