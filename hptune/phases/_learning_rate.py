from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.keys import TrialStatus
from hptune.phases._base import Decision, PhaseBudget, TrialOutcome
from hptune.phases._grid import GridPhase
from hptune.phases._ranking import NoiseRanking, rank_within_noise
from hptune.presets import DEFAULT_LEARNING_RATE_GRID

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.seeds import Margin
    from hptune.train import RunnerBase

__all__ = ["EDGE_FACTOR", "LearningRatePhase"]

#: An edge extension's step: twice the highest rate tried, or half the lowest.
EDGE_FACTOR = 2.0


class LearningRatePhase(GridPhase):
    """Phase 2: every learning rate of a grid, each on the same seeds.

    Decision rule: every rate costs the same to train, so the rate with the best seed mean
    wins, whether the others are worse beyond seed noise (``clear_winner``), shown
    equivalent to it (``best_mean_equivalent``: their paired difference is within the
    equivalence margin) or not told apart (``best_mean_undecided``, after racing has added
    the seeds it may). With ``tie_break="lowest"`` the lowest rate shown *equivalent* to the
    best is chosen instead (further from divergence); a rate merely not told apart never is.

    Edges are explored: when the best rate is the highest tried (or the lowest), one more
    rate past it (twice it, or half) is tried before the phase decides, up to
    ``extend_edges`` in all; a rate at or above 1, or past a rate that diverged, is not.

    Args:
        grid: The learning rates to try (sorted here); by default the presets' grid.
        tie_break: ``best_mean`` or ``lowest``: which of the rates equivalent to the best wins.
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.
        margin: The equivalence margin of the decision; None derives it from the seed noise.
        extend_edges: The most rates tried past the grid's edges.

    Raises:
        ValueError: A grid of fewer than two rates or a rate outside (0, 1), an unknown
            ``tie_break``, or a negative ``max_retries`` or ``extend_edges``.
    """

    name = "learning_rate"
    #: A diverged rate is evidence that the rate is too high, not a trial to remedy.
    remedies_divergence = False

    def __init__(
        self,
        grid: list[float] | None = None,
        *,
        tie_break: str = "best_mean",
        max_retries: int = 2,
        notes: Sequence[str] = (),
        margin: Margin | None = None,
        extend_edges: int = 2,
    ) -> None:
        super().__init__(max_retries=max_retries, notes=notes, margin=margin)
        if extend_edges < 0:
            raise ValueError(f"extend_edges must be 0 or more, got {extend_edges=}")
        grid = sorted(grid or DEFAULT_LEARNING_RATE_GRID)
        if len(grid) < 2 or any(not 0 < lr < 1 for lr in grid):
            raise ValueError(f"the grid needs two or more rates in (0, 1), got {grid=}")
        if tie_break not in ("lowest", "best_mean"):
            raise ValueError(f"tie_break must be 'lowest' or 'best_mean', got {tie_break=}")
        self.grid = grid
        self.tie_break = tie_break
        self.extend_edges = extend_edges

    @classmethod
    def from_config(
        cls,
        config: TuneConfig,
        *,
        base: HParams,
        runner: RunnerBase,
        incoming: Sequence[Diagnosis] = (),
    ) -> LearningRatePhase:
        options = config.phases.learning_rate
        return cls(
            options.grid,
            tie_break=options.tie_break,
            extend_edges=options.extend_edges,
            **cls.shared_options(config),
        )

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.learning_rate
        grid, extend = options.grid, options.extend_edges
        what = "grid " + ", ".join(f"{lr:g}" for lr in grid)
        if extend:
            what += f", up to {extend} more past an edge"
        trials = len(grid) + extend
        return PhaseBudget(trials, (base.epochs, base.epochs), trials * base.epochs, what)

    def grid_points(self) -> list[dict[str, Any]]:
        return [{"learning_rate": lr} for lr in self.grid]

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        low, high = self._reach()
        lr = trial.suggest_float("learning_rate", low, high, log=True)
        return base.replace(learning_rate=lr)

    def _reach(self) -> tuple[float, float]:
        """The lowest and highest rate the phase may try, its edge extensions included."""
        factor = EDGE_FACTOR**self.extend_edges
        return self.grid[0] / factor, min(self.grid[-1] * factor, 0.999)

    def edge_extension(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome]
    ) -> dict[str, Any] | None:
        tried = sorted({o.params["learning_rate"] for o in outcomes if "learning_rate" in o.params})
        if len([lr for lr in tried if lr not in self.grid]) >= self.extend_edges:
            return None
        best = ranking.best.params["learning_rate"]
        low, high = self._reach()
        if best == tried[-1] and best * EDGE_FACTOR <= high:
            return {"learning_rate": best * EDGE_FACTOR}
        if best == tried[0] and best / EDGE_FACTOR >= low:
            return {"learning_rate": best / EDGE_FACTOR}
        return None

    def _choose(self, ranking: NoiseRanking) -> tuple[float, str, str]:
        """The chosen rate, the case of the rule, and the reason with its numbers."""
        best_lr = ranking.best.params["learning_rate"]
        n_seeds = ranking.n_seeds
        if n_seeds < 2:
            return best_lr, "single_seed", (
                f"learning rate {best_lr:g} has the best value, but with one seed there is no "
                "noise estimate: the ranking may be luck. Use 3 seeds."
            )  # fmt: skip
        evidence = ranking.evidence(_rate)
        equivalent = sorted(o.params["learning_rate"] for o in ranking.equivalent)
        undecided = [o.params["learning_rate"] for o in ranking.undecided]
        if self.tie_break == "lowest" and len(equivalent) > 1:
            chosen = equivalent[0]
            return chosen, "lowest_equivalent", (
                f"learning rate {best_lr:g} has the best mean and {chosen:g} is equivalent to "
                f"it: chose the lowest equivalent rate, further from divergence (tie_break: "
                f"lowest; {evidence})"
            )  # fmt: skip
        if undecided:
            names = ", ".join(f"{lr:g}" for lr in sorted(undecided))
            return best_lr, "best_mean_undecided", (
                f"learning rate {best_lr:g} has the best mean; {names} not told apart from it "
                f"with {n_seeds} seeds (neither worse beyond seed noise nor within the "
                f"equivalence margin): the best mean wins ({evidence})"
            )  # fmt: skip
        if len(equivalent) > 1:
            return best_lr, "best_mean_equivalent", (
                f"learning rate {best_lr:g} has the best mean; the rates equivalent to it "
                f"cost the same, so the best mean wins ({evidence})"
            )  # fmt: skip
        return best_lr, "clear_winner", (
            f"learning rate {best_lr:g} is best; every other rate that finished is worse beyond "
            "seed noise "
            f"({n_seeds} paired seeds; {evidence})"
        )  # fmt: skip

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
        ranking = rank_within_noise(outcomes, direction, self.margin)
        for row in table:
            number = next(
                o.number for o in outcomes if o.params["learning_rate"] == row["learning_rate"]
            )
            gap = ranking.comparisons.get(number)
            row["gap_to_best"] = None if gap is None else [gap.mean, gap.ci_low, gap.ci_high]
            row["verdict"] = None if gap is None else str(gap.verdict)
        best_lr = ranking.best.params["learning_rate"]
        chosen, case, reason = self._choose(ranking)
        diverged = sorted(o.params["learning_rate"] for o in outcomes
                          if o.status == TrialStatus.DIVERGED)  # fmt: skip
        if diverged:  # on any seed, racing seeds included: unstable, never chosen
            names = ", ".join(f"{lr:g}" for lr in diverged)
            reason += f"; diverged on a seed, so never chosen: {names}"
        chosen_outcome = next(o for o in outcomes if o.params["learning_rate"] == chosen)
        summary: dict[str, object] = {"table": table, "best_by_mean": best_lr,
                                      **ranking.figures()}  # fmt: skip
        top = max(o.params["learning_rate"] for o in outcomes)
        extended = sorted(o.params["learning_rate"] for o in outcomes
                          if o.params["learning_rate"] not in self.grid)  # fmt: skip
        if extended:
            names = ", ".join(f"{lr:g}" for lr in extended)
            reason += f"; tried past the grid's edge, as the best lay there: {names}"
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
                    f"; the best rate is the highest tried, so a higher one may do better: "
                    f"add {higher[0]:g} and {higher[1]:g} to phases.learning_rate.grid"
                )
        return Decision(
            self.name, {"learning_rate": chosen}, chosen_outcome.mean, case, reason, summary
        )


def _rate(outcome: TrialOutcome) -> str:
    return f"rate {outcome.params['learning_rate']:g}"
