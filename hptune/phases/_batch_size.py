from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune.keys import TrialStatus
from hptune.phases._accounting import n_settled
from hptune.phases._base import Decision, Phase, PhaseBudget, TrialOutcome
from hptune.phases._ranking import rank_within_noise
from hptune.search import MemoryBoundedBatchSampler, oom_boundary

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.train import RunnerBase

__all__ = ["BatchSizePhase", "batch_candidates", "memory_limit_bytes"]


def memory_limit_bytes(config: TuneConfig) -> float | None:
    """The memory a training step may use: configured, else the GPU's, else no limit (CPU).

    Args:
        config: The run's configuration (``phases.batch_size.memory_limit_gb``, then
            ``training.gpu_memory_gb``).

    Returns:
        Bytes, or None on a CPU with no configured limit.
    """
    gb = config.phases.batch_size.memory_limit_gb or config.training.gpu_memory_gb
    if gb is not None:
        return gb * 2**30
    import torch

    if torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory)
    return None


def batch_candidates(base: HParams, *, keep_effective_batch: bool) -> list[int]:
    """Batch sizes worth trying from ``base``.

    Keeping the effective batch, only divisors of ``batch x accumulation`` qualify (the
    accumulation makes up the rest); otherwise powers of two up to 256.

    Args:
        base: The configuration the phase starts from.
        keep_effective_batch: Keep ``base``'s effective batch (batch x accumulation).

    Returns:
        Batch sizes, smallest first.
    """
    if keep_effective_batch:
        effective = base.effective_batch_size
        return [b for b in range(1, effective + 1) if effective % b == 0]
    return [2**k for k in range(9)]


class BatchSizePhase(Phase):
    """Phase 3: the largest batch that fits memory, and the fastest that trains as well.

    The ``hptune.search.MemoryBoundedBatchSampler`` proposes the largest candidate the
    memory model says fits (then smaller ones); a trial that runs out of memory is recorded
    and moves the boundary below it. With ``keep_effective_batch`` the gradient accumulation
    becomes ``effective // batch``, so the optimisation is the same and only speed changes.

    Decision rule: among the batches shown equivalent to the best (their paired difference
    is within the equivalence margin), the one with the most training examples per second;
    a batch merely not told apart from the best does not win on speed: the best mean does.

    Args:
        base: The configuration the phase starts from (its effective batch).
        n_trials: Trials to run (trials out of memory do not count).
        predict_bytes: Predicted peak memory of a training step at a batch size; None
            trusts every candidate.
        memory_limit_bytes: The memory a step may use; None means no limit.
        safety_margin: The share of the limit a prediction may use.
        keep_effective_batch: Keep ``base``'s effective batch: the gradient accumulation
            becomes ``effective // batch``.
        candidates: The batch sizes to consider; by default ``batch_candidates(base)``.
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.
        margin: The equivalence margin of the decision; None derives it from the seed noise.

    Raises:
        ValueError: ``n_trials`` under 1, a candidate that does not divide the effective
            batch (when it is kept), a candidate under 1, a margin outside (0, 1], a limit
            that is not positive, or a negative ``max_retries``.
    """

    name = "batch_size"

    def __init__(
        self,
        base: HParams,
        *,
        n_trials: int = 3,
        predict_bytes: Callable[[int], float] | None = None,
        memory_limit_bytes: float | None = None,
        safety_margin: float = 0.9,
        keep_effective_batch: bool = True,
        candidates: list[int] | None = None,
        max_retries: int = 2,
        notes: Sequence[str] = (),
        margin: float | None = None,
    ) -> None:
        super().__init__(max_retries=max_retries, notes=notes, margin=margin)
        if n_trials < 1:
            raise ValueError(f"n_trials must be at least 1, got {n_trials=}")
        self.keep_effective_batch = keep_effective_batch
        self.effective_batch = base.effective_batch_size
        all_candidates = candidates or batch_candidates(
            base, keep_effective_batch=keep_effective_batch
        )
        if keep_effective_batch:
            bad = [b for b in all_candidates if self.effective_batch % b]
            if bad:
                raise ValueError(
                    f"batch sizes {bad} do not divide the effective batch {self.effective_batch}; "
                    f"drop them or set keep_effective_batch to false, got {candidates=}"
                )
        self.candidates = sorted(all_candidates)
        self._n_trials = n_trials
        self.sampler = MemoryBoundedBatchSampler(
            self.candidates,
            predict_bytes=predict_bytes,
            memory_limit_bytes=memory_limit_bytes,
            safety_margin=safety_margin,
        )
        self.predict_bytes = predict_bytes
        self.memory_limit_bytes = memory_limit_bytes

    @classmethod
    def from_config(
        cls,
        config: TuneConfig,
        *,
        base: HParams,
        runner: RunnerBase,
        incoming: Sequence[Diagnosis] = (),
    ) -> BatchSizePhase:
        """Candidates bounded by the memory model of the configured model and method
        (calibrated on two probe steps when ``phases.batch_size.probe``).

        Args:
            config: The run's configuration (``phases.batch_size``, the model and method).
            base: The configuration the phase starts from.
            runner: The run's trainer: its sequence length, and the memory probe.
            incoming: Not used by this phase.

        Returns:
            The phase, ready to run.

        Raises:
            ConfigError: The options do not fit ``base`` (e.g. a candidate that does not
                divide the effective batch).
        """
        from hptune.exceptions import ConfigError
        from hptune.train.memory import MemoryModel

        options = config.phases.batch_size
        memory = MemoryModel.for_model(
            config.model,
            config.method,
            sequence_length=runner.data.max_train_length,
            gradient_checkpointing=config.training.gradient_checkpointing,
        )
        if options.probe:
            memory = memory.calibrated(runner.probe_memory([1, 2]))
        try:
            return cls(
                base,
                n_trials=options.n_trials,
                predict_bytes=memory.predict,
                memory_limit_bytes=memory_limit_bytes(config),
                safety_margin=options.safety_margin,
                keep_effective_batch=options.keep_effective_batch,
                candidates=options.candidates,
                max_retries=config.max_retries,
                margin=config.objective.equivalence_margin,
            )
        except ValueError as exc:
            raise ConfigError(f"phases.batch_size: {exc}") from None

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.batch_size
        what = f"largest fitting batch first, effective batch {base.effective_batch_size}" + (
            " kept" if options.keep_effective_batch else " free"
        )
        epochs = (base.epochs, base.epochs)
        return PhaseBudget(options.n_trials, epochs, options.n_trials * base.epochs, what)

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        return self.sampler

    def n_trials(self) -> int:
        return self._n_trials

    def n_remaining(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        # Out-of-memory trials do not use up the budget, but only untried batches can run.
        n_oom = sum(1 for t in trials if keys.is_oom(t))
        budget = self._n_trials - (n_settled(trials, self.max_retries) - n_oom)
        pending = sum(1 for t in trials if t.state.name in ("WAITING", "RUNNING"))
        return max(min(budget, len(self.sampler.untried(trials)) + pending), 0)

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        batch = int(trial.suggest_categorical("batch_size", self.candidates))
        if self.keep_effective_batch:
            return base.replace(
                batch_size=batch, gradient_accumulation_steps=self.effective_batch // batch
            )
        return base.replace(batch_size=batch)

    def memory_table(
        self, trials: list[optuna.trial.FrozenTrial] | None = None
    ) -> list[dict[str, Any]]:
        """Each candidate with its predicted memory and whether it may be proposed.

        Args:
            trials: The study's trials, for the out-of-memory boundary; none by default.

        Returns:
            One row per candidate: ``batch_size``, ``predicted_gb`` (None without a memory
            model), ``fits`` (the prediction is within the margin) and ``below_oom``.
        """
        boundary = oom_boundary(trials or [])
        rows = []
        for b in self.candidates:
            rows.append(
                {
                    "batch_size": b,
                    "predicted_gb": None
                    if self.predict_bytes is None
                    else round(self.predict_bytes(b) / 2**30, 4),
                    "fits": self.sampler.predicted_to_fit(b),
                    "below_oom": boundary is None or b < boundary,
                }
            )
        return rows

    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        table = [
            {
                "batch_size": o.params["batch_size"],
                "gradient_accumulation_steps": self._accumulation(o.params["batch_size"], base),
                "status": str(o.status),
                "mean": o.mean,
                "seed_values": {str(s): v for s, v in o.seed_values.items()},
                "examples_per_second": o.examples_per_second,
                "tokens_per_second": o.tokens_per_second,
            }
            for o in sorted(outcomes, key=lambda o: o.params.get("batch_size", 0))
            if "batch_size" in o.params
        ]
        summary = {
            "table": table,
            "memory": self.memory_table(),
            "limit_bytes": self.memory_limit_bytes,
        }
        ok = [o for o in outcomes if o.status == TrialStatus.OK]
        if not ok:
            return Decision(
                self.name, {}, None, "no_valid_trial",
                f"no batch size finished; keeping batch {base.batch_size}. Lower the memory "
                "limit or the sequence length, or use gradient checkpointing.",
                summary,
            )  # fmt: skip
        ranking = rank_within_noise(ok, direction, self.margin)
        summary.update(ranking.figures())
        fastest = max(ranking.equivalent, key=lambda o: o.examples_per_second or 0.0)
        batch = int(fastest.params["batch_size"])
        speed = {int(o.params["batch_size"]): o.examples_per_second or 0.0 for o in ok}
        evidence = ranking.evidence(lambda o: f"batch {o.params['batch_size']}")
        if ranking.n_seeds < 2:
            case = "single_seed"
            reason = f"batch {batch} has the best value; with one seed there is no noise estimate"
        elif fastest is not ranking.best:
            case = "fastest_equivalent"
            reason = (
                f"batch {batch} is the fastest ({speed[batch]:.1f} examples/s) of the batches "
                f"equivalent to the best (batch {ranking.best.params['batch_size']}, "
                f"{speed[int(ranking.best.params['batch_size'])]:.1f} examples/s): same "
                f"performance, faster ({evidence})"
            )
        elif ranking.undecided:
            case = "best_mean_undecided"
            reason = (
                f"batch {batch} has the best mean ({speed[batch]:.1f} examples/s); the batches "
                f"not told apart from it are not shown equivalent, so the best mean wins "
                f"({evidence})"
            )
        else:
            case = "best"
            reason = (
                f"batch {batch} is best ({speed[batch]:.1f} examples/s) and no faster batch is "
                f"equivalent ({evidence})"
            )
        if self.keep_effective_batch:
            reason += f"; effective batch kept at {self.effective_batch}"
        return Decision(
            self.name,
            {"batch_size": batch, "gradient_accumulation_steps": self._accumulation(batch, base)},
            fastest.mean,
            case,
            reason,
            summary,
        )

    def _accumulation(self, batch: int, base: HParams) -> int:
        if self.keep_effective_batch:
            return self.effective_batch // int(batch)
        return base.gradient_accumulation_steps
