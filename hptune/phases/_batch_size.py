from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune.config import BatchSizePhaseConfig, check_rate_factors, register_phase
from hptune.keys import TrialStatus
from hptune.phases._accounting import n_settled
from hptune.phases._base import PhaseBudget, TrialOutcome
from hptune.phases._batch_space import MIN_BATCH_TRIALS, batch_candidates, memory_limit_bytes
from hptune.phases._cut import Cut
from hptune.phases._local_rates import RATE_FACTORS, factor_words, ordered_factors, rates_won
from hptune.phases._ranked import Choice, RankedPhase, preference_case
from hptune.phases._ranking import NoiseRanking
from hptune.search import MemoryBoundedBatchSampler, oom_boundary
from hptune.stored import is_pending
from hptune.train.target import memory_check, memory_model

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.seeds import Margin
    from hptune.train import RunnerBase
    from hptune.train.target import Target

__all__ = ["BatchSizePhase", "batch_candidates", "memory_limit_bytes"]


@register_phase
class BatchSizePhase(RankedPhase):
    """Phase 3: the largest batch that fits memory, and the fastest that trains as well.

    The ``hptune.search.MemoryBoundedBatchSampler`` proposes the largest candidate the
    memory model says fits (then smaller ones); a trial that runs out of memory is recorded
    and moves the boundary below it. With ``keep_effective_batch`` the gradient accumulation
    becomes ``effective // batch``, so the optimisation is the same and only speed changes;
    a batch above the incoming effective batch trains without accumulation, so the effective
    batch grows with it, and the incoming batch is queued first so the comparison with it
    decides (a larger batch that trains worse is not equivalent to the best, so it loses).

    A batch that changes the effective batch (above it; any other batch without
    ``keep_effective_batch``) changes what the learning rate was tuned under, so it is
    compared at its own best rate: once the batches are done, each such batch is also tried
    at the other rates of ``rate_factors`` (`rate_probes`; under a compute budget, those its
    room pays for). The incoming batch stays at its rate, tuned under it.

    Decision rule: among the batches shown equivalent to the best (their paired difference
    is within the equivalence margin), the one with the most training examples per second,
    at its best rate; a batch merely not told apart from the best does not win on speed: the
    best mean does.

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
        rate_factors: The factors of the incoming learning rate a batch that changes the
            effective batch is tried at (``[1.0]``: the incoming rate only).
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.
        margin: The equivalence margin of the decision; None derives it from the seed noise.

    Raises:
        ValueError: ``n_trials`` under 1, a candidate below the effective batch that does
            not divide it (when it is kept), a candidate under 1, a margin outside (0, 1], a limit
            that is not positive, rate factors without 1.0, or a negative ``max_retries``.
    """

    name = "batch_size"
    order = 3
    title = "3. Batch size"
    params = ("batch_size", "gradient_accumulation_steps")
    options_model = BatchSizePhaseConfig
    in_method = True
    cut_turn = 3
    plan_key = "batch_sizes"
    trial_columns = ("examples_per_second", "tokens_per_second")

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
        rate_factors: Sequence[float] = RATE_FACTORS,
        max_retries: int = 2,
        notes: Sequence[str] = (),
        margin: Margin | None = None,
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
            effective = self.effective_batch
            bad = [b for b in all_candidates if b < effective and effective % b]
            if bad:
                raise ValueError(
                    f"batch sizes {bad} are below the effective batch {effective} and do not "
                    "divide it (a batch above it trains with no accumulation); drop them or set "
                    f"keep_effective_batch to false, got {candidates=}"
                )
        self.incoming = base.batch_size
        if keep_effective_batch and max(all_candidates) > self.effective_batch:
            # a larger batch is judged against the incoming one: it must be a candidate
            all_candidates = [*all_candidates, self.incoming]
        self.candidates = sorted(set(all_candidates))
        self._n_trials = n_trials
        self.start = base
        self.rate = base.learning_rate
        self.rates = [
            self.rate * f for f in ordered_factors(check_rate_factors(list(rate_factors)))
        ]
        self.sampler = MemoryBoundedBatchSampler(
            self.candidates,
            predict_bytes=predict_bytes,
            memory_limit_bytes=memory_limit_bytes,
            safety_margin=safety_margin,
            defaults={"learning_rate": self.rate},  # a probe is queued with its own
        )
        self.predict_bytes = predict_bytes
        self.memory_limit_bytes = memory_limit_bytes

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.batch_size
        what = f"largest fitting batch first, effective batch {base.effective_batch_size}" + (
            (" kept (a larger batch that fits grows it)" if options.larger_batches else " kept")
            if options.keep_effective_batch
            else " free"
        )
        grows = options.larger_batches or not options.keep_effective_batch
        if options.candidates and options.keep_effective_batch:  # given: known up front
            grows = max(options.candidates) > base.effective_batch_size
        if len(options.rate_factors) > 1 and grows:
            rates = ", ".join(f"x{f:g}" for f in sorted(options.rate_factors) if f != 1.0)
            what += f"; a batch that changes it also at the learning rate {rates}, when run"
        return PhaseBudget.full(options.n_trials, base.epochs, what)

    @classmethod
    def budget_cut(cls, config: TuneConfig, base: HParams, n_train: int) -> Cut | None:
        """One batch trial fewer, while more than ``MIN_BATCH_TRIALS`` are left."""
        return Cut.fewer_trials(cls.name, config.phases.batch_size.n_trials, 1, MIN_BATCH_TRIALS)

    @classmethod
    def configured(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, incoming: Sequence[Diagnosis]
    ) -> dict[str, Any]:
        """Candidates bounded by the memory model of the configured model and method
        (calibrated on two probe steps when ``phases.batch_size.probe``).

        Args:
            config: The run's configuration (``phases.batch_size``, the model and method).
            base: The configuration the phase starts from.
            runner: The run's trainer: its sequence length, and the memory probe.
            incoming: Not used by this phase.

        Returns:
            The constructor's arguments.
        """
        options = config.phases.batch_size
        check = memory_check(config, runner, probe=options.probe)
        memory = check.model if check is not None else memory_model(config, runner)
        candidates = options.candidates or batch_candidates(
            base,
            keep_effective_batch=options.keep_effective_batch,
            largest_fitting=None
            if check is None or not options.larger_batches
            else check.largest_batch(),
            n_train=runner.data.n_train,
        )
        return {
            "base": base,
            "n_trials": options.n_trials,
            "predict_bytes": memory.predict,
            "memory_limit_bytes": None if check is None else check.limit_bytes,
            "safety_margin": options.safety_margin,
            "keep_effective_batch": options.keep_effective_batch,
            "candidates": candidates,
            "rate_factors": options.rate_factors,
        }

    @classmethod
    def plan_detail(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, target: Target
    ) -> list[dict[str, Any]]:
        """Each candidate batch with its predicted memory (``memory_table``)."""
        return cls.from_config(config, base=base, runner=runner).memory_table()

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        return self.sampler

    def initial_params(self, base: HParams) -> list[dict[str, Any]]:
        # With batches above the incoming effective batch, the sampler would propose them
        # first and might never come down to the incoming batch; queued, it is compared
        # (read back from the earlier phase that trained it, usually).
        above = any(b > self.effective_batch for b in self.sampler.allowed([]))
        if above and self.keep_effective_batch and self.incoming in self.sampler.allowed([]):
            return [{"batch_size": self.incoming}]
        return []

    def n_trials(self) -> int:
        return self._n_trials

    def n_remaining(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        # Out-of-memory trials do not use up the budget, but only untried batches can run.
        n_oom = sum(1 for t in trials if keys.is_oom(t))
        budget = self._n_trials - (n_settled(trials, self.max_retries) - n_oom)
        pending = sum(1 for t in trials if is_pending(t))
        return max(min(budget, len(self.sampler.untried(trials)) + pending), 0)

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        batch = int(trial.suggest_categorical("batch_size", self.candidates))
        hp = base.replace(
            batch_size=batch, gradient_accumulation_steps=self._accumulation(batch, base)
        )
        if not self._retuned(batch):
            return hp
        # the incoming rate (the sampler's default), or a probe's, queued with it
        return hp.replace(learning_rate=trial.suggest_categorical("learning_rate", self.rates))

    def rate_probes(self, outcomes: list[TrialOutcome]) -> list[dict[str, Any]]:
        """Each batch that changes the effective batch and finished (or diverged) at the
        incoming rate, at the other rates of the local set: lower ones first."""
        done = sorted(
            {
                int(o.params["batch_size"])
                for o in outcomes
                if o.params.get("learning_rate") == self.rate
                and o.status in (TrialStatus.OK, TrialStatus.DIVERGED, TrialStatus.PRUNED)
            },
            reverse=True,  # the sampler's order: the largest batch first
        )
        return [
            {"batch_size": b, "learning_rate": rate}
            for b in done
            if self._retuned(b)
            for rate in self.rates[1:]
        ]

    def _retuned(self, batch: int) -> bool:
        """Whether ``batch`` changes the effective batch, so its rate is re-tuned."""
        if len(self.rates) == 1:
            return False
        if self.keep_effective_batch:
            return batch > self.effective_batch
        return batch != self.incoming

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

    def _tabled(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        return sorted(
            (o for o in outcomes if "batch_size" in o.params), key=lambda o: o.params["batch_size"]
        )

    def _columns(self, outcome: TrialOutcome, base: HParams) -> dict[str, Any]:
        batch = outcome.params["batch_size"]
        columns = {
            "batch_size": batch,
            "gradient_accumulation_steps": self._accumulation(batch, base),
        }
        if any(self._retuned(b) for b in self.candidates):  # the rate column where it varies
            columns["learning_rate"] = outcome.params.get("learning_rate", self.rate)
        return columns

    def _none_finished(self, base: HParams) -> str:
        return (
            f"no batch size finished; keeping batch {base.batch_size}. Lower the memory "
            "limit or the sequence length, or use gradient checkpointing."
        )

    def _summary_head(self, ranking: NoiseRanking | None) -> dict[str, Any]:
        return {"memory": self.memory_table(), "limit_bytes": self.memory_limit_bytes}

    def _choose(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome], base: HParams, direction: str
    ) -> Choice:
        fastest = max(ranking.equivalent, key=lambda o: o.examples_per_second or 0.0)
        batch = int(fastest.params["batch_size"])
        # the batch at its best rate (its one trial, unless its rate was re-tuned)
        chosen = next(o for o in ranking.ranked if int(o.params["batch_size"]) == batch)
        case = preference_case(ranking, chosen, "fastest_equivalent")
        reason = self._reason(case, ranking, chosen) + self._effective_note(chosen, outcomes)
        params = {
            "batch_size": batch,
            "gradient_accumulation_steps": self._accumulation(batch, base),
        }
        rate = chosen.params.get("learning_rate", self.rate)
        if rate != base.learning_rate:
            params["learning_rate"] = rate
        summary = {}
        if any(self._retuned(int(o.params["batch_size"])) for o in ranking.ranked):
            batch_of = lambda o: f"batch {o.params['batch_size']}"  # noqa: E731
            summary["rates_won"] = rates_won(ranking, batch_of, base)
        return Choice(params, chosen.mean, case, reason, summary)

    def _named(self, outcome: TrialOutcome) -> str:
        """A trial in words: its batch, and its rate where the rate was re-tuned."""
        words = f"batch {outcome.params['batch_size']}"
        rate = outcome.params.get("learning_rate")
        return words if rate is None else f"{words} at {factor_words(rate, self.rate)}"

    def _reason(self, case: str, ranking: NoiseRanking, chosen: TrialOutcome) -> str:
        """The rule's branch in words, with the speeds it compared."""
        evidence = ranking.evidence(self._named)
        named, speed = self._named(chosen), chosen.examples_per_second or 0.0
        if case == "single_seed":
            return f"{named} has the best value; with one seed there is no noise estimate"
        if case == "fastest_equivalent":
            best = ranking.best
            return (
                f"{named} is the fastest ({speed:.1f} examples/s) of the batches equivalent to "
                f"the best ({self._named(best)}, {best.examples_per_second or 0.0:.1f} "
                f"examples/s): same performance, faster ({evidence})"
            )
        if case == "best_mean_undecided":
            return (
                f"{named} has the best mean ({speed:.1f} examples/s); the batches not told "
                f"apart from it are not shown equivalent, so the best mean wins ({evidence})"
            )
        return (
            f"{named} is best ({speed:.1f} examples/s) and no faster batch is equivalent "
            f"({evidence})"
        )

    def _effective_note(self, chosen: TrialOutcome, outcomes: list[TrialOutcome]) -> str:
        """What the chosen batch does to the effective batch, and to the rate."""
        batch = int(chosen.params["batch_size"])
        if self._retuned(batch):
            rate = chosen.params.get("learning_rate", self.rate)
            effective = batch * self._accumulation(batch, self.start)
            changes = f"; the effective batch changes from {self.effective_batch} to {effective}"
            probed = any(
                o.params.get("batch_size") == batch and o.params.get("learning_rate") != self.rate
                for o in outcomes
            )
            if not probed:  # the budget's room paid for none of its probes
                return f"{changes}, at the incoming learning rate (no room to re-tune it)"
            return (
                f"{changes}, the learning rate re-tuned for it: {factor_words(rate, self.rate)} won"
            )
        if self.keep_effective_batch and batch > self.effective_batch:
            return (
                f"; the effective batch grows from {self.effective_batch} to {batch} (no "
                "accumulation), the learning rate as decided at the incoming one"
            )
        if self.keep_effective_batch:
            return f"; effective batch kept at {self.effective_batch}"
        return ""

    def _accumulation(self, batch: int, base: HParams) -> int:
        if self.keep_effective_batch:
            return max(self.effective_batch // int(batch), 1)
        return base.gradient_accumulation_steps
