from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

# A sampler subclasses Optuna's base class, so this module imports optuna when it loads (it
# is never loaded by ``import hptune``: ``hptune.search`` loads on first use).
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler

from hptune import keys
from hptune.stored import state_of

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

__all__ = ["MemoryBoundedBatchSampler", "oom_boundary", "record_out_of_memory"]


def record_out_of_memory(trial: optuna.Trial, batch_size: int, message: str = "") -> None:
    """Mark ``trial`` as out of memory at ``batch_size``; samplers on the storage read it.

    Args:
        trial: The running trial.
        batch_size: The batch size that did not fit.
        message: The error's message (its first 500 characters are kept).
    """
    keys.set_status(trial, keys.TrialStatus.OOM)
    trial.set_user_attr(keys.OOM, {"batch_size": batch_size, "message": message[:500]})


def oom_boundary(trials: Sequence[FrozenTrial], param_name: str = "batch_size") -> int | None:
    """The smallest batch size that ran out of memory in ``trials``, or None.

    Args:
        trials: A study's trials.
        param_name: The batch-size parameter.

    Returns:
        The boundary (every batch at or above it is never proposed again); None when no
        trial ran out of memory.
    """
    sizes = [int(t.params[param_name]) for t in trials if keys.is_oom(t) and param_name in t.params]
    return min(sizes) if sizes else None


class MemoryBoundedBatchSampler(BaseSampler):
    """An Optuna sampler for the batch size that never proposes a batch that will not fit.

    A candidate is proposed only when ``predict_bytes(batch)`` is at most
    ``safety_margin x memory_limit_bytes`` and it is below every batch size that ran out of
    memory in the study (see ``record_out_of_memory``). Among those, it proposes the
    largest not yet tried, so a study learns the memory boundary first and then walks down;
    once all have been tried, it proposes the largest again. Other parameters take their
    value in ``defaults`` (a trial queued with its own keeps that), else go to
    ``base_sampler`` (random by default). When no candidate is allowed, sampling the batch
    size raises a ValueError that says why.

    Args:
        candidates: the batch sizes to consider.
        predict_bytes: predicted peak memory of a training step at a batch size, e.g.
            ``hptune.train.memory.MemoryModel.predict``; None trusts every candidate.
        memory_limit_bytes: the memory a step may use; None means no limit.
        param_name: the parameter this sampler owns.
        safety_margin: the share of the limit a prediction may use.
        base_sampler: the sampler of every other parameter.
        defaults: other parameters' values (e.g. the learning rate a batch trains at unless
            queued with another).

    Raises:
        ValueError: on an empty candidate list, a candidate under 1, a margin outside
            (0, 1] or a memory limit that is not positive.
    """

    def __init__(
        self,
        candidates: Sequence[int],
        *,
        predict_bytes: Callable[[int], float] | None = None,
        memory_limit_bytes: float | None = None,
        param_name: str = "batch_size",
        safety_margin: float = 0.9,
        base_sampler: optuna.samplers.BaseSampler | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        if not candidates or any(int(c) < 1 for c in candidates):
            raise ValueError(f"candidates must be positive batch sizes, got {candidates=}")
        if not 0 < safety_margin <= 1:
            raise ValueError(f"safety_margin must be in (0, 1], got {safety_margin=}")
        if memory_limit_bytes is not None and memory_limit_bytes <= 0:
            raise ValueError(f"memory_limit_bytes must be positive, got {memory_limit_bytes=}")
        self.candidates = sorted({int(c) for c in candidates})
        self.predict_bytes = predict_bytes
        self.memory_limit_bytes = memory_limit_bytes
        self.param_name = param_name
        self.safety_margin = safety_margin
        self._base = base_sampler or optuna.samplers.RandomSampler(seed=0)
        self.defaults = dict(defaults or {})

    def predicted_to_fit(self, batch_size: int) -> bool:
        """Whether the memory model says ``batch_size`` fits within the margin.

        Args:
            batch_size: A batch size.

        Returns:
            True when its prediction is within ``safety_margin x memory_limit_bytes``, or
            without a prediction or a limit.
        """
        if self.predict_bytes is None or self.memory_limit_bytes is None:
            return True
        return self.predict_bytes(batch_size) <= self.safety_margin * self.memory_limit_bytes

    def allowed(self, trials: Sequence[FrozenTrial]) -> list[int]:
        """The candidates that fit and are below the out-of-memory boundary of ``trials``.

        Args:
            trials: The study's trials.

        Returns:
            Batch sizes, smallest first.
        """
        boundary = oom_boundary(trials, self.param_name)
        return [
            b
            for b in self.candidates
            if self.predicted_to_fit(b) and (boundary is None or b < boundary)
        ]

    def untried(self, trials: Sequence[FrozenTrial], *, exclude: int | None = None) -> list[int]:
        """Allowed candidates that no trial (running, finished or failed) has used yet.

        Args:
            trials: The study's trials.
            exclude: The number of a trial not to count (the one being sampled).

        Returns:
            Batch sizes, smallest first.
        """
        tried = {
            int(t.params[self.param_name])
            for t in trials
            if self.param_name in t.params and t.number != exclude and state_of(t) != "waiting"
        }
        return [b for b in self.allowed(trials) if b not in tried]

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name in self.defaults:
            return self.defaults[param_name]
        if param_name != self.param_name:
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        trials = study.get_trials(deepcopy=False)
        in_space = [b for b in self.allowed(trials) if _contains(param_distribution, b)]
        if not in_space:
            raise ValueError(
                f"no batch size fits: {self._explain()}; lower the sequence length, enable "
                "gradient checkpointing or use QLoRA"
            )
        untried = [b for b in self.untried(trials, exclude=trial.number) if b in in_space]
        return max(untried or in_space)

    def _explain(self) -> str:
        smallest = self.candidates[0]
        if self.predict_bytes is None or self.memory_limit_bytes is None:
            return f"every candidate from {smallest} up ran out of memory"
        need = self.predict_bytes(smallest) / 2**30
        have = self.safety_margin * self.memory_limit_bytes / 2**30
        return f"batch {smallest} needs {need:.3g} GB, {have:.3g} GB may be used"

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._base.after_trial(study, trial, state, values)


def _contains(distribution: BaseDistribution, value: int) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(distribution, IntDistribution):
        return distribution.low <= value <= distribution.high and (
            (value - distribution.low) % distribution.step == 0
        )
    return False
