"""Each phase's options under ``phases:``: the base of a phase's section, and the sections of
the method's own phases (each named by its phase class, ``Phase.options_model``)."""

# Pydantic copies a field's mutable default for each instance; ruff knows that only of models
# whose pydantic base is in the same file, and _Strict is in another.
# ruff: noqa: RUF012

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from hptune.config._base import SchedulerName, _Strict
from hptune.config._passthrough import ARGS_SAME, check_training_args
from hptune.presets import DEFAULT_LEARNING_RATE_GRID, LEARNING_RATE_GRID_BY_METHOD

__all__ = [
    "BatchSizePhaseConfig",
    "EpochsPhaseConfig",
    "LearningRatePhaseConfig",
    "LoraRankPhaseConfig",
    "PhaseOptions",
    "RateFactors",
    "RegularizationCandidate",
    "RegularizationPhaseConfig",
    "SearchRange",
    "check_rate_factors",
]


def check_rate_factors(factors: list[float]) -> list[float]:
    """Check a local learning-rate set (``rate_factors``: factors of the incoming rate).

    Args:
        factors: The factors.

    Returns:
        The factors.

    Raises:
        ValueError: No 1.0 among them, a repeat, or a factor of 0 or less.
    """
    if 1.0 not in factors or len(set(factors)) != len(factors) or min(factors) <= 0:
        raise ValueError(
            f"rate_factors: give positive factors without repeats, 1.0 among them, got {factors}"
        )
    return list(factors)


#: Factors of the incoming learning rate a candidate is tried at (its rate re-tuned).
RateFactors = Annotated[list[float], AfterValidator(check_rate_factors)]


class PhaseOptions(_Strict):
    """The base of a phase's section under ``phases:``: its options, and how they are checked
    against the rest of the configuration (``config`` is the ``TuneConfig`` being validated).
    """

    def fit_to(self, config: Any) -> None:
        """Fill options whose default depends on the rest of the configuration (called for
        every phase's section, whether the phase runs or not).

        Args:
            config: The configuration being validated.
        """

    def check(self, config: Any) -> None:
        """Refuse options that do not fit the rest of the configuration (called when the
        phase runs).

        Args:
            config: The configuration being validated.

        Raises:
            ValueError: What does not fit, and the fix.
        """

    def schedulers_tried(self) -> set[str]:
        """The learning-rate schedules the phase may train with besides the starting one.

        Returns:
            Scheduler names (none by default).
        """
        return set()


class LearningRatePhaseConfig(PhaseOptions):
    """Options of the learning-rate phase."""

    #: The learning rates tried, each on every seed (default: the method's grid, under its
    #: danger level: LoRA 1e-5, 5e-5, 1e-4, 3e-4; QLoRA 2e-5, 1e-4, 2e-4, 6e-4; full 1e-6,
    #: 5e-6, 1e-5, 3e-5).
    grid: list[float] = list(DEFAULT_LEARNING_RATE_GRID)
    #: Among rates shown equivalent to the best (within objective.equivalence_margin): the
    #: best mean, or the lowest (further from divergence). Rates not told apart from the best
    #: never win over it.
    tie_break: Literal["lowest", "best_mean"] = "best_mean"
    #: When the best rate is the highest (or lowest) tried, try one more rate past it (x2,
    #: or /2), up to this many in all, before the phase decides (0: never).
    extend_edges: int = Field(2, ge=0)

    @field_validator("grid")
    @classmethod
    def _grid_valid(cls, grid: list[float]) -> list[float]:
        if len(grid) < 2:
            raise ValueError("the learning-rate grid needs at least two values")
        if any(not 0 < lr < 1 for lr in grid):
            raise ValueError("every learning rate must be between 0 and 1 (exclusive)")
        if len(set(grid)) != len(grid):
            raise ValueError("the learning-rate grid has a repeated value")
        return sorted(grid)

    def fit_to(self, config: Any) -> None:
        # The grid not given: the method's (LoRA's is the field's default).
        if "grid" not in self.model_fields_set:
            self.grid = list(LEARNING_RATE_GRID_BY_METHOD[config.method.type])
            self.model_fields_set.discard("grid")  # still the default when dumped


class BatchSizePhaseConfig(PhaseOptions):
    """Options of the batch-size phase."""

    #: Batch sizes to train (largest that fits first, then smaller ones).
    n_trials: int = Field(3, gt=0)
    #: The memory a training step may use; default: training.gpu_memory_gb, else the GPU's
    #: own memory, else (CPU) no limit.
    memory_limit_gb: float | None = Field(None, gt=0)
    #: The share of the limit a predicted step may use.
    safety_margin: float = Field(0.9, gt=0, le=1)
    #: Keep batch x gradient accumulation equal to the decided effective batch (the batch
    #: then only changes speed); false keeps the accumulation and lets the effective batch grow.
    keep_effective_batch: bool = True
    #: With keep_effective_batch, also try batches above the effective batch when the memory
    #: model says they fit (powers of two up to the largest that fits): they train without
    #: accumulation, so the effective batch grows with them; false never grows it.
    larger_batches: bool = True
    #: Batch sizes to consider; default: divisors of the effective batch (kept), with the
    #: larger batches that fit, or powers of two up to 256.
    candidates: list[int] | None = None
    #: On a GPU, measure two small batches to calibrate the memory model.
    probe: bool = True
    #: A batch that changes the effective batch (above it; any other batch without
    #: keep_effective_batch) is also tried at these factors of the incoming learning rate
    #: once the batches are done (the rate re-tuned where the effective batch changes;
    #: under a compute budget, those its room pays for); ``[1.0]``: the incoming rate only.
    rate_factors: RateFactors = [0.5, 1.0, 2.0]

    @field_validator("candidates")
    @classmethod
    def _candidates_valid(cls, candidates: list[int] | None) -> list[int] | None:
        if candidates is not None and (not candidates or min(candidates) < 1):
            raise ValueError("give one or more positive batch sizes")
        return None if candidates is None else sorted(set(candidates))


class EpochsPhaseConfig(PhaseOptions):
    """Options of the epochs phase."""

    #: [fewest, most] epochs to try; default: the presets' range for the training-set size,
    #: widened to at least three values.
    range: tuple[int, int] | None = None
    #: Stop trials behind the earlier, at least as long, trials on the same seeds and epoch
    #: (hptune.search.PairedPruner).
    pruning: bool = True
    #: When the best count is the most tried, try one more past it (1.5x, rounded up), up to
    #: this many in all, before the phase decides (0: never).
    extend_edges: int = Field(2, ge=0)
    #: Each count is tried at these factors of the incoming learning rate and competes at
    #: its best (a longer decaying run wants a lower peak rate). Default ``[1.0]``: one
    #: trial a count, at the incoming rate; the regularization phase re-tunes the rate at
    #: the chosen count, and a budget's spare trials try its best schedules at the other
    #: counts. ``[0.5, 1.0, 2.0]`` triples the phase.
    rate_factors: RateFactors = [1.0]

    @field_validator("range")
    @classmethod
    def _range_valid(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] < value[1]:
            raise ValueError("give [fewest, most] epochs with 1 <= fewest < most")
        return value


class SearchRange(_Strict):
    """A numeric range a phase searches: ``{low: 0.9, high: 0.999}`` (``log: true`` for a log
    scale; integers when both ends are)."""

    low: float | int
    high: float | int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"give low < high, got low {self.low} and high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        return self


class RegularizationCandidate(_Strict):
    """One configuration the regularization phase tries; a key left out keeps the incoming
    value."""

    scheduler: SchedulerName | None = None
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    weight_decay: float | None = Field(None, ge=0, lt=1)


class RegularizationPhaseConfig(PhaseOptions):
    """Options of the weight decay / scheduler / warmup phase."""

    #: The most trials (the first is the incoming configuration); None: every candidate at
    #: every rate of ``rate_factors``.
    n_trials: int | None = Field(None, ge=2)
    #: The configurations tried, each at every rate of ``rate_factors``; None: the incoming
    #: one and one per other scheduler, its weight decay and warmup drawn from the ranges.
    candidates: list[RegularizationCandidate] | None = None
    #: The learning rates each candidate is tried at, as factors of the incoming rate (the
    #: rate re-tuned for each, as the nuisance hyperparameter); ``[1.0]``: the incoming rate.
    rate_factors: RateFactors = [0.5, 1.0, 2.0]
    #: Under a compute budget with room once the phase's trials and racing are done, try the
    #: best configurations at the epochs phase's other counts (a schedule changes the best
    #: count); only what the budget has left is spent. Off: the phase as planned.
    spare_epochs: bool = True
    #: The weight-decay range [low, high], searched on a log scale.
    weight_decay: tuple[float, float] = (0.01, 0.1)
    #: The warmup-ratio range [low, high].
    warmup_ratio: tuple[float, float] = (0.05, 0.10)
    #: The schedules tried.
    schedulers: list[SchedulerName] = ["linear", "cosine", "constant_with_warmup"]
    #: Stop trials behind the earlier trials on the same seeds and epoch
    #: (hptune.search.PairedPruner).
    pruning: bool = True
    #: The seed of the phase's TPE sampler: the same seed proposes the same trials; another
    #: repeats the search with other proposals.
    sampler_seed: int = Field(0, ge=0)
    #: More ``TrainingArguments`` keys searched with the three, each a range
    #: (``{low: 0.95, high: 0.999}``) or a list of choices: e.g. ``adam_beta2``,
    #: ``neftune_noise_alpha`` (checked as ``training.args`` is: hptune's own loop searches
    #: ``adam_beta1``, ``adam_beta2``, ``adam_epsilon``). The incoming value of each is
    #: ``training.args``' or the Trainer's default.
    space: dict[str, SearchRange | list[Any]] = {}

    @field_validator("space")
    @classmethod
    def _choices_valid(cls, space: dict[str, Any]) -> dict[str, Any]:
        for key, spec in space.items():
            if isinstance(spec, list) and (not spec or len(set(map(repr, spec))) != len(spec)):
                raise ValueError(f"{key}: give one or more choices, without repeats")
        return space

    @field_validator("weight_decay", "warmup_ratio")
    @classmethod
    def _range_valid(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] < value[1] < 1:
            raise ValueError("give [low, high] with 0 < low < high < 1")
        return value

    @field_validator("candidates")
    @classmethod
    def _candidates_valid(
        cls, value: list[RegularizationCandidate] | None
    ) -> list[RegularizationCandidate] | None:
        if value is not None and not value:
            raise ValueError("give one candidate or more, or leave candidates out")
        return value

    @field_validator("schedulers")
    @classmethod
    def _schedulers_valid(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("give one or more schedulers, without repeats")
        return value

    def schedulers_tried(self) -> set[str]:
        return set(self.schedulers)

    def check(self, config: Any) -> None:
        if not self.space:
            return
        tuned = [k for k in self.space if k in ARGS_SAME]
        if tuned:
            raise ValueError(
                f"phases.regularization.space: {', '.join(tuned)} is training."
                f"{ARGS_SAME[tuned[0]]}, which hptune's phases decide; search other keys "
                "there (weight decay, scheduler and warmup are the phase's own ranges)"
            )
        try:
            check_training_args(dict.fromkeys(self.space), None, config.training.backend)
        except ValueError as exc:
            raise ValueError(f"phases.regularization.space: {exc}") from None


class LoraRankPhaseConfig(PhaseOptions):
    """Options of the LoRA rank phase (an extra phase: add ``lora_rank`` to phases.run)."""

    #: The ranks tried, each on every seed.
    ranks: list[int] = [4, 8, 16, 32]
    #: How alpha follows the rank: ``same_scale`` keeps the adapter's scale alpha / r of
    #: method.alpha / method.r (alpha = r x that ratio), ``fixed`` keeps method.alpha (the
    #: scale then falls as the rank grows; with method.lora.use_rslora the scale is alpha /
    #: sqrt(r)).
    alpha: Literal["same_scale", "fixed"] = "same_scale"
    #: Search alpha too: every rank is tried with every alpha of this list (a grid of ranks x
    #: alphas, each on every seed) instead of alpha following the rank by ``alpha``'s rule.
    alphas: list[int] | None = None
    #: Each rank (and alpha) is tried at these factors of the incoming learning rate: the
    #: adapter's scale changes the best rate, so each competes at its own; ``[1.0]``: every
    #: rank at the incoming rate.
    rate_factors: RateFactors = [0.5, 1.0, 2.0]

    @field_validator("alphas")
    @classmethod
    def _alphas_valid(cls, alphas: list[int] | None) -> list[int] | None:
        if alphas is not None and (
            not alphas or min(alphas) < 1 or len(set(alphas)) != len(alphas)
        ):
            raise ValueError("give one or more different alphas, each at least 1")
        return None if alphas is None else sorted(alphas)

    @field_validator("ranks")
    @classmethod
    def _ranks_valid(cls, ranks: list[int]) -> list[int]:
        if len(ranks) < 2 or min(ranks) < 1 or len(set(ranks)) != len(ranks):
            raise ValueError("give two or more different ranks, each at least 1")
        return sorted(ranks)

    def check(self, config: Any) -> None:
        if config.method.type == "full":
            raise ValueError(
                "phases.run: lora_rank tunes a LoRA adapter's rank, and method.type is full "
                "(no adapter); remove lora_rank, or use method.type: lora"
            )
