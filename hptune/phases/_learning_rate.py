from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hptune.config import LearningRatePhaseConfig, register_phase
from hptune.keys import TrialStatus
from hptune.phases._base import PhaseBudget, TrialOutcome
from hptune.phases._cut import Cut
from hptune.phases._grid import GridPhase
from hptune.phases._ranked import Choice
from hptune.phases._ranking import NoiseRanking
from hptune.presets import DEFAULT_LEARNING_RATE_GRID

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.seed_model import ModelComparison
    from hptune.seeds import Margin
    from hptune.train import RunnerBase

__all__ = ["EDGE_FACTOR", "LearningRatePhase"]

#: An edge extension's step: twice the highest rate tried, or half the lowest.
EDGE_FACTOR = 2.0
#: The fewest grid points a budget's cut leaves.
MIN_GRID_POINTS = 3  # the ends and a middle: the regularization phase's x0.5 and x2 reach
# every rate of a factor-2 grid between them


@register_phase
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
    order = 2
    title = "2. Learning rate"
    params = ("learning_rate",)
    options_model = LearningRatePhaseConfig
    in_method = True
    cut_turn = 2
    trial_columns = ("diagnosis",)
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
        super().__init__(
            max_retries=max_retries, notes=notes, margin=margin, extend_edges=extend_edges
        )
        grid = sorted(grid or DEFAULT_LEARNING_RATE_GRID)
        if len(grid) < 2 or any(not 0 < lr < 1 for lr in grid):
            raise ValueError(f"the grid needs two or more rates in (0, 1), got {grid=}")
        if tie_break not in ("lowest", "best_mean"):
            raise ValueError(f"tie_break must be 'lowest' or 'best_mean', got {tie_break=}")
        self.grid = grid
        self.tie_break = tie_break

    @classmethod
    def configured(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, incoming: Sequence[Diagnosis]
    ) -> dict[str, Any]:
        options = config.phases.learning_rate
        return {
            "grid": options.grid,
            "tie_break": options.tie_break,
            "extend_edges": options.extend_edges,
        }

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.learning_rate
        grid, extend = options.grid, options.extend_edges
        what = "grid " + ", ".join(f"{lr:g}" for lr in grid)
        if extend:
            what += f", up to {extend} more past an edge"
        trials = len(grid) + extend
        incoming = any(math.isclose(lr, base.learning_rate) for lr in grid)
        return replace(PhaseBudget.full(trials, base.epochs, what), read_back=int(incoming))

    @classmethod
    def edge_cut(cls, config: TuneConfig) -> dict[str, Any]:
        return (
            {"phases.learning_rate.extend_edges": 0}
            if config.phases.learning_rate.extend_edges
            else {}
        )

    @classmethod
    def budget_cut(cls, config: TuneConfig, base: HParams, n_train: int) -> Cut | None:
        """One interior grid point off (never the starting rate), while more than
        ``MIN_GRID_POINTS`` are left: the one whose neighbours are closest together on a log
        scale (the farthest from the starting
        rate on a tie, the higher on a second). The grid gets coarser, never narrower: the
        regularization phase re-tunes the rate around the chosen one (x0.5, x2), which fills
        a coarse grid's gaps, while a narrower grid cannot reach past its ends once the cut
        turned the edge extensions off."""
        grid = sorted(config.phases.learning_rate.grid)
        if len(grid) <= MIN_GRID_POINTS:
            return None

        def crowding(i: int) -> tuple[float, float, float]:
            gap = round(math.log(grid[i + 1] / grid[i - 1]), 9)  # ties exact, not float noise
            return (-gap, abs(math.log(grid[i] / base.learning_rate)), grid[i])

        # never the starting rate: the reference, read back from the phase before
        interior = [i for i in range(1, len(grid) - 1) if grid[i] != base.learning_rate]
        if not interior:
            return None
        dropped = grid[max(interior, key=crowding)]
        changes = {"phases.learning_rate.grid": [lr for lr in grid if lr != dropped]}
        return Cut(changes, f"learning rate {dropped:g} off the grid")

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

    def _rule(self, ranking: NoiseRanking) -> tuple[float, str, str]:
        """The chosen rate, the case of the rule, and the reason with its numbers."""
        best_lr = ranking.best.params["learning_rate"]
        n_seeds = ranking.n_seeds
        if n_seeds < 2:
            return (
                best_lr,
                "single_seed",
                (
                    f"learning rate {best_lr:g} has the best value, but with one seed there is no "
                    "noise estimate: the ranking may be luck. Use 3 seeds."
                ),
            )
        evidence = ranking.evidence(_rate)
        equivalent = sorted(o.params["learning_rate"] for o in ranking.equivalent)
        undecided = [o.params["learning_rate"] for o in ranking.undecided]
        if self.tie_break == "lowest" and len(equivalent) > 1:
            chosen = equivalent[0]
            return (
                chosen,
                "lowest_equivalent",
                (
                    f"learning rate {best_lr:g} has the best mean and {chosen:g} is equivalent to "
                    f"it: chose the lowest equivalent rate, further from divergence (tie_break: "
                    f"lowest; {evidence})"
                ),
            )
        if undecided:
            names = _listed(sorted(undecided))
            return (
                best_lr,
                "best_mean_undecided",
                (
                    f"learning rate {best_lr:g} has the best mean; {names} not told apart from it "
                    f"with {n_seeds} seeds (neither worse beyond seed noise nor within the "
                    f"equivalence margin): the best mean wins ({evidence})"
                ),
            )
        if len(equivalent) > 1:
            return (
                best_lr,
                "best_mean_equivalent",
                (
                    f"learning rate {best_lr:g} has the best mean; the rates equivalent to it "
                    f"cost the same, so the best mean wins ({evidence})"
                ),
            )
        return (
            best_lr,
            "clear_winner",
            (
                f"learning rate {best_lr:g} is best; every other rate that finished is worse "
                f"beyond seed noise ({n_seeds} paired seeds; {evidence})"
            ),
        )

    def _tabled(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        return sorted(outcomes, key=lambda o: o.params["learning_rate"])

    def _none_finished(self, base: HParams) -> str:
        return (
            "every learning rate diverged or failed; keeping the baseline's rate "
            f"{base.learning_rate:g}. Lower the grid (divide it by 10) and run again."
        )

    def _summary_head(self, ranking: NoiseRanking | None) -> dict[str, Any]:
        return {} if ranking is None else {"best_by_mean": ranking.best.params["learning_rate"]}

    def _compared_trial(
        self, row: dict[str, Any], outcome: TrialOutcome, outcomes: list[TrialOutcome]
    ) -> int | None:
        rate = outcome.params["learning_rate"]  # the first trial of the rate
        return next(o.number for o in outcomes if o.params["learning_rate"] == rate)

    def _verdict_columns(self, comparison: ModelComparison | None) -> dict[str, Any]:
        gap = None
        if comparison is not None:
            gap = [comparison.mean, comparison.ci_low, comparison.ci_high]
        return {"gap_to_best": gap, **super()._verdict_columns(comparison)}

    def _choose(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome], base: HParams, direction: str
    ) -> Choice:
        chosen, case, reason = self._rule(ranking)
        chosen_outcome = next(o for o in outcomes if o.params["learning_rate"] == chosen)
        notes, proposal = self._notes(ranking, outcomes)
        return Choice(
            {"learning_rate": chosen}, chosen_outcome.mean, case, reason + notes, proposal
        )

    def _notes(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome]
    ) -> tuple[str, dict[str, Any]]:
        """The rates that diverged or were tried past the grid, and, when the best is the
        highest tried, a proposal of higher rates (with its summary entry)."""
        rates = [o.params["learning_rate"] for o in outcomes]
        notes = ""
        diverged = sorted(
            o.params["learning_rate"] for o in outcomes if o.status == TrialStatus.DIVERGED
        )
        if diverged:  # on any seed, racing seeds included: unstable, never chosen
            notes += f"; diverged on a seed, so never chosen: {_listed(diverged)}"
        extended = sorted(lr for lr in rates if lr not in self.grid)
        if extended:
            notes += f"; tried past the grid's edge, as the best lay there: {_listed(extended)}"
        top = max(rates)
        if ranking.best.params["learning_rate"] != top:
            return notes, {}
        higher = [top * 2, top * 3]
        if ranking.best.diagnosis == "not_learning":
            notes += (
                f"; at the top of the grid the loss still does not fall (diagnosis: not "
                f"learning): try rates 2-3x higher, {higher[0]:g} and {higher[1]:g}"
            )
        else:
            notes += (
                f"; the best rate is the highest tried, so a higher one may do better: "
                f"add {higher[0]:g} and {higher[1]:g} to phases.learning_rate.grid"
            )
        return notes, {"proposal": {"extend_grid": higher}}


def _listed(rates: list[float]) -> str:
    return ", ".join(f"{lr:g}" for lr in rates)


def _rate(outcome: TrialOutcome) -> str:
    return f"rate {outcome.params['learning_rate']:g}"
