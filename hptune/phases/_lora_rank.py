from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.config import LoraRankPhaseConfig, check_rate_factors, register_phase
from hptune.phases._base import PhaseBudget, TrialOutcome
from hptune.phases._grid import GridPhase
from hptune.phases._local_rates import RATE_FACTORS, factor_words, rate_points, rates_won
from hptune.phases._ranked import Choice, Preference
from hptune.phases._ranking import NoiseRanking
from hptune.train.memory import trainable_parameters
from hptune.train.target import memory_model

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.seeds import Margin
    from hptune.train import RunnerBase
    from hptune.train.target import Target

__all__ = ["LoraRankPhase", "alpha_for"]


def alpha_for(rank: int, rule: str, method_r: int, method_alpha: int) -> int:
    """The LoRA alpha a rank trains with under ``rule``.

    Args:
        rank: The rank.
        rule: ``same_scale`` (alpha / r stays ``method_alpha / method_r``) or ``fixed``
            (``method_alpha``).
        method_r: The configured rank (``method.r``).
        method_alpha: The configured alpha (``method.alpha``).

    Returns:
        The alpha, at least 1.
    """
    if rule == "fixed":
        return method_alpha
    return max(1, round(rank * method_alpha / method_r))


@register_phase
class LoraRankPhase(GridPhase):
    """An extra phase: the LoRA adapter's rank, every rank of a list on the same seeds.

    Alpha follows the rank by a stated rule (``same_scale``: the adapter's scale alpha / r
    stays the configured one; ``fixed``: alpha stays the configured one), or is searched:
    with ``alphas``, every rank is tried with every alpha (a grid). A larger rank trains more
    parameters, takes more memory and saves a larger adapter; alpha changes neither.

    The rank and alpha change the adapter's update scale, so the learning rate is re-tuned
    for each: every (rank, alpha) is tried at the incoming rate times each of
    ``rate_factors`` (the configured rank's own rate first: the paired reference; its other
    rates last, the learning-rate phase tuned it there). A rate that diverges ends its trial
    as diverged, with no remedy (it is a probe).

    Decision rule: the smallest rank among those shown equivalent to the best (within the
    equivalence margin): the adapter that trains as well for the fewest parameters; with
    alphas searched, that rank's best mean among the equivalent ones picks its alpha. A rank
    merely not told apart from the best (after racing) does not win on size: the best mean
    does. The rate is that trial's: the rank at its best rate.

    Args:
        ranks: The ranks to try (sorted here).
        alpha: ``same_scale`` or ``fixed``: how alpha follows the rank.
        alphas: The alphas to try with every rank (searched); None: alpha follows ``alpha``.
        method_r: The configured rank, for the alpha rule.
        method_alpha: The configured alpha, for the alpha rule.
        rate: The incoming learning rate; None: every trial trains at it (no re-tuning).
        rate_factors: The factors of ``rate`` each rank is tried at.
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.
        margin: The equivalence margin of the decision; None derives it from the seed noise.

    Raises:
        ValueError: Fewer than two ranks, a rank under 1, an unknown alpha rule, or rate
            factors without 1.0.
    """

    name = "lora_rank"
    order = 6
    title = "Extra: LoRA rank"
    params = ("lora_r", "lora_alpha")
    options_model = LoraRankPhaseConfig
    plan_key = "lora_ranks"

    def __init__(
        self,
        ranks: Sequence[int] = (4, 8, 16, 32),
        *,
        alpha: str = "same_scale",
        alphas: Sequence[int] | None = None,
        method_r: int = 8,
        method_alpha: int = 16,
        rate: float | None = None,
        rate_factors: Sequence[float] = RATE_FACTORS,
        max_retries: int = 2,
        notes: Sequence[str] = (),
        margin: Margin | None = None,
    ) -> None:
        super().__init__(max_retries=max_retries, notes=notes, margin=margin)
        ranks = sorted(set(ranks))
        if len(ranks) < 2 or ranks[0] < 1:
            raise ValueError(f"give two or more different ranks, each at least 1, got {ranks=}")
        if alpha not in ("same_scale", "fixed"):
            raise ValueError(f"alpha must be 'same_scale' or 'fixed', got {alpha=}")
        if alphas is not None and (not alphas or min(alphas) < 1):
            raise ValueError(f"give one or more alphas, each at least 1, got {alphas=}")
        self.ranks = ranks
        self.alpha = alpha
        self.alphas = sorted(set(alphas)) if alphas is not None else None
        self.method_r, self.method_alpha = method_r, method_alpha
        self.rate = rate
        self.rate_factors = check_rate_factors(list(rate_factors))

    @classmethod
    def configured(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, incoming: Sequence[Diagnosis]
    ) -> dict[str, Any]:
        options = config.phases.section(cls.name, LoraRankPhaseConfig)
        return {
            "ranks": options.ranks,
            "alpha": options.alpha,
            "alphas": options.alphas,
            "method_r": config.method.r,
            "method_alpha": config.method.alpha,
            "rate": base.learning_rate,
            "rate_factors": options.rate_factors,
        }

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.section(cls.name, LoraRankPhaseConfig)
        rule = (
            f"alpha = {config.method.alpha / config.method.r:g} x r"
            if options.alpha == "same_scale"
            else f"alpha {config.method.alpha}"
        )
        if options.alphas is not None:
            rule = f"x alphas {', '.join(map(str, options.alphas))}"
        what = f"LoRA ranks {', '.join(map(str, options.ranks))} ({rule})"
        trials = len(options.ranks) * len(options.alphas or [None])
        if len(options.rate_factors) > 1:
            rates = ", ".join(f"x{f:g}" for f in sorted(options.rate_factors))
            what += f", each at the learning rate {rates}"
            trials *= len(options.rate_factors)
        return PhaseBudget.full(trials, base.epochs, what)

    @classmethod
    def plan_detail(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, target: Target
    ) -> list[dict[str, Any]]:
        """Each rank with its alpha, trainable parameters, and the predicted memory of a
        training step at the starting batch (alphas searched: each rank's rows name them;
        alpha changes neither the parameters nor the memory)."""
        options, method = config.phases.section(cls.name, LoraRankPhaseConfig), config.method
        rows: list[dict[str, Any]] = []
        for rank in options.ranks:
            alpha = alpha_for(rank, options.alpha, method.r, method.alpha)
            if options.alphas:
                alpha = options.alphas[0]
            ranked = config.model_copy(
                update={"method": method.model_copy(update={"r": rank, "alpha": alpha})}
            )
            memory = memory_model(ranked, runner, target=target)
            rows.append(
                {
                    "r": rank,
                    "lora_alpha": alpha,
                    "trainable_parameters": trainable_parameters(ranked.model, ranked.method),
                    "predicted_gb": round(memory.predict(base.batch_size) / 1e9, 4),
                }
            )
            if options.alphas:
                rows[-1]["lora_alphas"] = list(options.alphas)
        return rows

    def grid_points(self) -> list[dict[str, Any]]:
        if self.alphas is None:
            points = [{"lora_r": r} for r in self.ranks]
        else:
            points = [{"lora_r": r, "lora_alpha": a} for r in self.ranks for a in self.alphas]
        if not self._retunes:
            return points
        assert self.rate is not None
        # the configured rank (its first alpha) first: the reference every other is paired to
        own = [p for p in points if p["lora_r"] == self.method_r][:1]
        ordered = own + [p for p in points if p not in own]
        return rate_points(ordered, self.rate, self.rate_factors, reference=bool(own))

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        rank = trial.suggest_int("lora_r", self.ranks[0], self.ranks[-1], log=True)
        if self.alphas is None:
            hp = base.replace(lora_r=rank, lora_alpha=self._alpha(rank, {}))
        else:
            alpha = trial.suggest_int("lora_alpha", self.alphas[0], self.alphas[-1], log=True)
            hp = base.replace(lora_r=rank, lora_alpha=alpha)
        if not self._retunes:
            return hp
        rates = sorted({p["learning_rate"] for p in self.grid_points()})
        return hp.replace(learning_rate=trial.suggest_categorical("learning_rate", rates))

    @property
    def _retunes(self) -> bool:
        """Whether each rank is tried at more than the incoming rate."""
        return self.rate is not None and len(self.rate_factors) > 1

    def _alpha(self, rank: int, params: dict[str, Any]) -> int:
        """The alpha a trial trained with: its searched one, or the rule's for its rank."""
        if "lora_alpha" in params:
            return int(params["lora_alpha"])
        return alpha_for(rank, self.alpha, self.method_r, self.method_alpha)

    def _named(self, outcome: TrialOutcome) -> str:
        words = self._candidate(outcome)
        rate = outcome.params.get("learning_rate")
        if rate is None or self.rate is None:
            return words
        return f"{words} at {factor_words(rate, self.rate)}"

    def _candidate(self, outcome: TrialOutcome) -> str:
        rank = f"rank {outcome.params['lora_r']}"
        return rank if self.alphas is None else f"{rank} alpha {outcome.params['lora_alpha']}"

    def _tabled(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        return sorted((o for o in outcomes if "lora_r" in o.params), key=_grid_order)

    def _columns(self, outcome: TrialOutcome, base: HParams) -> dict[str, Any]:
        rank = outcome.params["lora_r"]
        alpha = self._alpha(int(rank), outcome.params)
        columns = {"lora_r": rank, "lora_alpha": alpha, "number": outcome.number}
        if self._retunes:
            columns["learning_rate"] = outcome.params.get("learning_rate", self.rate)
        return columns

    def _decidable(self, outcome: TrialOutcome) -> bool:
        return "lora_r" in outcome.params

    def _none_finished(self, base: HParams) -> str:
        return "no rank finished; keeping the configured rank"

    def _summary_head(self, ranking: NoiseRanking | None) -> dict[str, Any]:
        return {} if ranking is None else {"alpha_rule": "searched" if self.alphas else self.alpha}

    def _compared_trial(
        self, row: dict[str, Any], outcome: TrialOutcome, outcomes: list[TrialOutcome]
    ) -> int | None:
        return int(row.pop("number"))  # the column stays only while no trial finished

    def _choose(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome], base: HParams, direction: str
    ) -> Choice:
        sign = 1.0 if direction == "minimize" else -1.0
        chosen = min(  # the smallest rank; its best mean among them (alphas searched)
            ranking.equivalent, key=lambda o: (int(o.params["lora_r"]), sign * (o.mean or 0.0))
        )
        rank = int(chosen.params["lora_r"])
        case, reason = _SMALLEST.choose(ranking, chosen, self._named)
        params = {"lora_r": rank, "lora_alpha": self._alpha(rank, chosen.params)}
        rate = chosen.params.get("learning_rate", base.learning_rate)
        summary = {}
        if self._retunes:
            summary["rates_won"] = rates_won(ranking, self._candidate, base)
            reason += f"; {self._candidate(chosen)} won at {factor_words(rate, base.learning_rate)}"
        if rate != base.learning_rate:
            params["learning_rate"] = rate
        return Choice(params, chosen.mean, case, reason, summary)


#: The rule: the smallest rank among the ranks equivalent to the best.
_SMALLEST = Preference(
    "smallest_equivalent",
    "the smaller adapter, same performance, fewer parameters",
    "ranks",
    "smaller rank",
)


def _grid_order(outcome: TrialOutcome) -> tuple[int, int]:
    return (int(outcome.params.get("lora_r", 0)), int(outcome.params.get("lora_alpha", 0)))
