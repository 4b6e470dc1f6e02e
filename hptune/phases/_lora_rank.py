from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.config import LoraRankPhaseConfig, register_phase
from hptune.phases._base import PhaseBudget, TrialOutcome
from hptune.phases._grid import GridPhase
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

    Decision rule: the smallest rank among those shown equivalent to the best (within the
    equivalence margin): the adapter that trains as well for the fewest parameters; with
    alphas searched, that rank's best mean among the equivalent ones picks its alpha. A rank
    merely not told apart from the best (after racing) does not win on size: the best mean
    does.

    Args:
        ranks: The ranks to try (sorted here).
        alpha: ``same_scale`` or ``fixed``: how alpha follows the rank.
        alphas: The alphas to try with every rank (searched); None: alpha follows ``alpha``.
        method_r: The configured rank, for the alpha rule.
        method_alpha: The configured alpha, for the alpha rule.
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.
        margin: The equivalence margin of the decision; None derives it from the seed noise.

    Raises:
        ValueError: Fewer than two ranks, a rank under 1, or an unknown alpha rule.
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
            return [{"lora_r": r} for r in self.ranks]
        return [{"lora_r": r, "lora_alpha": a} for r in self.ranks for a in self.alphas]

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        rank = trial.suggest_int("lora_r", self.ranks[0], self.ranks[-1], log=True)
        if self.alphas is None:
            return base.replace(lora_r=rank, lora_alpha=self._alpha(rank, {}))
        alpha = trial.suggest_int("lora_alpha", self.alphas[0], self.alphas[-1], log=True)
        return base.replace(lora_r=rank, lora_alpha=alpha)

    def _alpha(self, rank: int, params: dict[str, Any]) -> int:
        """The alpha a trial trained with: its searched one, or the rule's for its rank."""
        if "lora_alpha" in params:
            return int(params["lora_alpha"])
        return alpha_for(rank, self.alpha, self.method_r, self.method_alpha)

    def _named(self, outcome: TrialOutcome) -> str:
        rank = f"rank {outcome.params['lora_r']}"
        return rank if self.alphas is None else f"{rank} alpha {outcome.params['lora_alpha']}"

    def _tabled(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        return sorted((o for o in outcomes if "lora_r" in o.params), key=_grid_order)

    def _columns(self, outcome: TrialOutcome, base: HParams) -> dict[str, Any]:
        rank = outcome.params["lora_r"]
        alpha = self._alpha(int(rank), outcome.params)
        return {"lora_r": rank, "lora_alpha": alpha, "number": outcome.number}

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
        return Choice(params, chosen.mean, case, reason)


#: The rule: the smallest rank among the ranks equivalent to the best.
_SMALLEST = Preference(
    "smallest_equivalent",
    "the smaller adapter, same performance, fewer parameters",
    "ranks",
    "smaller rank",
)


def _grid_order(outcome: TrialOutcome) -> tuple[int, int]:
    return (int(outcome.params.get("lora_r", 0)), int(outcome.params.get("lora_alpha", 0)))
