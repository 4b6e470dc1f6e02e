from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.keys import TrialStatus
from hptune.phases._accounting import grid_remaining
from hptune.phases._base import Decision, Phase, PhaseBudget, TrialOutcome, rank_within_noise
from hptune.presets import DEFAULT_LEARNING_RATE_GRID
from hptune.seeds import PairedDifference

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.train import Runner

__all__ = ["LearningRatePhase"]


class LearningRatePhase(Phase):
    """Phase 2: every learning rate of a grid, each on the same seeds.

    Decision rule: the rate with the best seed mean wins when every other rate is worse
    beyond seed noise (the 95% interval of the paired difference excludes zero). When some
    rates are within noise of the best, the lowest of them is chosen (``tie_break="lowest"``,
    the default): it trains as well on this evidence and sits further from divergence, the
    costliest failure of a too-high rate; ``tie_break="best_mean"`` keeps the best mean.

    Args:
        grid: The learning rates to try (sorted here); by default the presets' grid.
        tie_break: ``lowest`` or ``best_mean``: which of the rates tied within noise wins.
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.

    Raises:
        ValueError: A grid of fewer than two rates or a rate outside (0, 1), an unknown
            ``tie_break``, or a negative ``max_retries``.
    """

    name = "learning_rate"
    #: A diverged rate is evidence that the rate is too high, not a trial to remedy.
    remedies_divergence = False

    def __init__(
        self,
        grid: list[float] | None = None,
        *,
        tie_break: str = "lowest",
        max_retries: int = 2,
        notes: Sequence[str] = (),
    ) -> None:
        super().__init__(max_retries=max_retries, notes=notes)
        grid = sorted(grid or DEFAULT_LEARNING_RATE_GRID)
        if len(grid) < 2 or any(not 0 < lr < 1 for lr in grid):
            raise ValueError(f"the grid needs two or more rates in (0, 1), got {grid=}")
        if tie_break not in ("lowest", "best_mean"):
            raise ValueError(f"tie_break must be 'lowest' or 'best_mean', got {tie_break=}")
        self.grid = grid
        self.tie_break = tie_break

    @classmethod
    def from_config(
        cls,
        config: TuneConfig,
        *,
        base: HParams,
        runner: Runner,
        incoming: Sequence[Diagnosis] = (),
    ) -> LearningRatePhase:
        options = config.phases.learning_rate
        return cls(options.grid, tie_break=options.tie_break, max_retries=config.max_retries)

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        grid = config.phases.learning_rate.grid
        what = "grid " + ", ".join(f"{lr:g}" for lr in grid)
        return PhaseBudget(len(grid), (base.epochs, base.epochs), len(grid) * base.epochs, what)

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        import optuna

        # Every grid point is queued with its rate fixed (initial_params), each exactly once
        # even with many workers, so the sampler is never consulted.
        return optuna.samplers.RandomSampler(seed=0)

    def initial_params(self, base: HParams) -> list[dict[str, Any]]:
        return [{"learning_rate": lr} for lr in self.grid]

    def n_trials(self) -> int:
        return len(self.grid)

    def n_remaining(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        return grid_remaining(trials, "learning_rate", self.grid, self.max_retries)

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        lr = trial.suggest_float("learning_rate", self.grid[0], self.grid[-1], log=True)
        return base.replace(learning_rate=lr)

    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        table = [
            {
                "learning_rate": o.params["learning_rate"],
                "status": str(o.status),
                "mean": o.mean,
                "seed_values": {str(s): v for s, v in o.seed_values.items()},
                "diagnosis": o.diagnosis,
            }
            for o in sorted(outcomes, key=lambda o: o.params["learning_rate"])
        ]
        if not any(o.status == TrialStatus.OK for o in outcomes):
            return Decision(
                self.name,
                {},
                None,
                "no_valid_trial",
                "every learning rate diverged or failed; keeping the baseline's rate "
                f"{base.learning_rate:g}. Lower the grid (divide it by 10) and run again.",
                {"table": table},
            )
        ranking = rank_within_noise(outcomes, direction)
        for row in table:
            number = next(
                o.number for o in outcomes if o.params["learning_rate"] == row["learning_rate"]
            )
            gap = ranking.gaps.get(number)
            row["gap_to_best"] = None if gap is None else [gap.mean, gap.ci_low, gap.ci_high]
        best_lr = ranking.best.params["learning_rate"]
        n_seeds = len(ranking.best.seed_values)
        if n_seeds < 2:
            chosen, case = best_lr, "single_seed"
            reason = (
                f"learning rate {best_lr:g} has the best value, but with one seed there is no "
                "noise estimate: the ranking may be luck. Use 3 seeds."
            )
        elif len(ranking.tied) == 1:
            chosen, case = best_lr, "clear_winner"
            reason = (
                f"learning rate {best_lr:g} is best; every other rate is worse beyond seed "
                f"noise ({_closest_gap(ranking.gaps)}, {n_seeds} paired seeds)"
            )
        else:
            tied_lrs = sorted(o.params["learning_rate"] for o in ranking.tied)
            case = "tie_within_noise"
            others = ", ".join(f"{lr:g}" for lr in tied_lrs if lr != best_lr)
            reason = (
                f"learning rate {best_lr:g} has the best mean, but {others} "
                f"{'is' if len(tied_lrs) == 2 else 'are'} within seed noise of it "
                f"({n_seeds} paired seeds, 95% interval of the difference contains 0); "
            )
            if self.tie_break == "lowest":
                chosen = tied_lrs[0]
                reason += f"chose the lowest tied rate, {chosen:g}, further from divergence"
            else:
                chosen = best_lr
                reason += f"kept the best mean, {chosen:g} (tie_break: best_mean)"
        chosen_outcome = next(o for o in outcomes if o.params["learning_rate"] == chosen)
        summary: dict[str, object] = {"table": table, "best_by_mean": best_lr}
        top = self.grid[-1]
        if best_lr == top:
            higher = [top * 2, top * 3]
            summary["proposal"] = {"extend_grid": higher}
            if ranking.best.diagnosis == "not_learning":
                reason += (
                    f"; at the top of the grid the loss still does not fall (diagnosis: not "
                    f"learning): try rates 2-3x higher, {higher[0]:g} and {higher[1]:g}"
                )
            else:
                reason += (
                    f"; the best rate is the top of the grid, so a higher one may do better: "
                    f"add {higher[0]:g} and {higher[1]:g} to phases.learning_rate.grid"
                )
        return Decision(
            self.name, {"learning_rate": chosen}, chosen_outcome.mean, case, reason, summary
        )


def _closest_gap(gaps: dict[int, PairedDifference]) -> str:
    ranked = sorted(gaps.values(), key=lambda g: abs(g.mean))
    if not ranked:
        return "no other rate finished"
    g = ranked[0]
    return (
        f"the closest is worse by {abs(g.mean):.4g}, 95% interval {g.ci_low:.4g} to {g.ci_high:.4g}"
    )
