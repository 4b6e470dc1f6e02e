from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.keys import TrialStatus
from hptune.phases._base import Decision, PhaseBudget, TrialOutcome
from hptune.phases._grid import GridPhase
from hptune.phases._ranking import rank_within_noise

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.seeds import Margin
    from hptune.train import RunnerBase

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
    def from_config(
        cls,
        config: TuneConfig,
        *,
        base: HParams,
        runner: RunnerBase,
        incoming: Sequence[Diagnosis] = (),
    ) -> LoraRankPhase:
        options = config.phases.lora_rank
        return cls(options.ranks, alpha=options.alpha, alphas=options.alphas,
                   method_r=config.method.r,
                   method_alpha=config.method.alpha, **cls.shared_options(config))  # fmt: skip

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.lora_rank
        rule = (
            f"alpha = {config.method.alpha / config.method.r:g} x r"
            if options.alpha == "same_scale"
            else f"alpha {config.method.alpha}"
        )
        if options.alphas is not None:
            rule = f"x alphas {', '.join(map(str, options.alphas))}"
        what = f"LoRA ranks {', '.join(map(str, options.ranks))} ({rule})"
        trials = len(options.ranks) * len(options.alphas or [None])
        return PhaseBudget(trials, (base.epochs, base.epochs), trials * base.epochs, what)

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

    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        table = [
            {
                "lora_r": o.params["lora_r"],
                "lora_alpha": self._alpha(int(o.params["lora_r"]), o.params),
                "number": o.number,
                "status": str(o.status),
                "mean": o.mean,
                "seed_values": {str(s): v for s, v in o.seed_values.items()},
            }
            for o in sorted(outcomes, key=_grid_order)
            if "lora_r" in o.params
        ]
        ok = [o for o in outcomes if o.status == TrialStatus.OK and "lora_r" in o.params]
        if not ok:
            return Decision(
                self.name, {}, None, "no_valid_trial",
                "no rank finished; keeping the configured rank", {"table": table},
            )  # fmt: skip
        ranking = rank_within_noise(ok, direction, self.margin)
        for row in table:
            gap = ranking.comparisons.get(row.pop("number"))
            row["verdict"] = None if gap is None else str(gap.verdict)
        sign = 1.0 if direction == "minimize" else -1.0
        chosen = min(  # the smallest rank; its best mean among them (alphas searched)
            ranking.equivalent, key=lambda o: (int(o.params["lora_r"]), sign * (o.mean or 0.0))
        )
        rank = int(chosen.params["lora_r"])
        evidence = ranking.evidence(self._named)
        if ranking.n_seeds < 2:
            case = "single_seed"
            reason = (
                f"{self._named(chosen)} has the best value; with one seed there is no noise "
                "estimate"
            )
        elif chosen is not ranking.best:
            case = "smallest_equivalent"
            reason = (
                f"{self._named(ranking.best)} has the best mean and {self._named(chosen)} is "
                "equivalent to it: chose "
                f"the smaller adapter, same performance, fewer parameters ({evidence})"
            )
        elif ranking.undecided:
            case = "best_mean_undecided"
            reason = (
                f"{self._named(chosen)} has the best mean; the ranks not told apart from it with "
                f"{ranking.n_seeds} seeds are not shown equivalent, so the best mean wins "
                f"({evidence})"
            )
        else:
            case = "best"
            reason = f"{self._named(chosen)} is best and no smaller rank is equivalent ({evidence})"
        return Decision(
            self.name, {"lora_r": rank, "lora_alpha": self._alpha(rank, chosen.params)},
            chosen.mean, case, reason,
            {"table": table, "alpha_rule": "searched" if self.alphas else self.alpha,
             **ranking.figures()},
        )  # fmt: skip


def _grid_order(outcome: TrialOutcome) -> tuple[int, int]:
    return (int(outcome.params.get("lora_r", 0)), int(outcome.params.get("lora_alpha", 0)))
