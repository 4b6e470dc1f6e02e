"""What the phases cost, and a compute budget: fitted before the run, kept to during it.

Costs are counted in seed-epochs: one epoch of one seed's run over the training set. Each
phase states its own upper bound (``hptune.phases.Phase.planned``); `planned_phases`
adds racing's extra seeds. With ``budget:`` in the configuration, `fit_budget` cuts the
run down until that bound fits (racing first, then regularization trials, the epoch range,
learning-rate grid points and batch trials in turn, seeds last), or refuses a budget below
the method's minimum. During the run, ``hptune.ledger.BudgetLedger`` keeps to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hptune.exceptions import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from hptune.config import BudgetConfig, TuneConfig
    from hptune.hparams import HParams

__all__ = ["BudgetFit", "Cut", "PlannedPhase", "apply_cuts", "fit_budget", "planned_phases"]

#: The fewest a cut leaves: regularization trials, batch trials, grid points, seeds.
MIN_REGULARIZATION_TRIALS = 2
MIN_BATCH_TRIALS = 2
MIN_GRID_POINTS = 2
MIN_SEEDS = 2


@dataclass(frozen=True)
class PlannedPhase:
    """One phase's budget: trials x seeds x epochs, as an upper bound on seed-epochs.

    Args:
        phase: The phase's name.
        trials: Trials it runs at most.
        epochs: Epochs per trial, as shown: ``2``, ``2-4`` or ``<= 4``.
        seed_epochs: Epochs of all its trials on every seed.
        what: The phase in a few words.
        seeds: Paired seeds per trial (racing may add up to ``objective.max_seeds``).
        most_epochs: The most epochs a trial trains.
        racing: The part of ``seed_epochs`` racing's extra seeds may take.
    """

    phase: str
    trials: int
    epochs: str  # "2", or "2-4" for the epochs phase
    seed_epochs: int
    what: str
    seeds: int = 0
    most_epochs: int = 0
    racing: int = 0


def planned_phases(
    config: TuneConfig, hp: HParams, n_train: int, *, has_test: bool
) -> list[PlannedPhase]:
    """Each configured phase's budget in trials and seed-epochs (an upper bound).

    Each phase states its own budget (``hptune.phases.Phase.planned``); a phase that
    decides the epochs passes its upper bound to the phases after it. Racing's extra seeds
    (``objective.max_seeds``) are counted: the best and up to three contenders, each once
    per extra seed, at the phase's longest run.

    Args:
        config: The run's configuration.
        hp: The starting configuration.
        n_train: Training examples.
        has_test: Whether the data has a test split (the final evaluation runs).

    Returns:
        One row per phase that would run, in order.
    """
    from hptune.phases import PHASES, racing_trials_at_most

    n = len(config.objective.seed_list)
    extra = len(config.objective.racing_seeds)
    names: list[str] = list(config.phases.run)
    if config.phases.test_evaluation and has_test:
        names.append("final")
    bounded: set[str] = set()
    planned = []
    for name in names:
        budget = PHASES[name].planned(config, hp, n_train)
        low, high = budget.epochs
        epochs = (
            f"{low}-{high}" if low != high else f"<= {high}" if "epochs" in bounded else str(high)
        )
        # Racing adds seeds to a few configurations not yet told apart, at their length.
        racing = racing_trials_at_most(extra, budget.trials) * high if name != "final" else 0
        what = budget.what + (
            f", racing up to {config.objective.max_seeds} seeds" if racing else ""
        )
        planned.append(PlannedPhase(name, budget.trials, epochs, n * budget.seed_epochs + racing,
                                    what, n, high, racing))  # fmt: skip
        hp = hp.replace(**budget.bounds)
        bounded |= set(budget.bounds)
    return planned


@dataclass(frozen=True)
class Cut:
    """One cut of a budget fit: configuration fields set to new values.

    A fit is stored as its cuts (in each phase's setup record) and reapplied from them, so
    every start and every worker runs the configuration the first fit made.

    Args:
        changes: Each dotted field's new value, e.g. ``{"phases.regularization.n_trials": 6}``.
        words: The cut in words, e.g. ``learning rate 0.001 off the grid``.
        plan: The plan's seed-epochs at most once this cut is made.
    """

    changes: dict[str, Any]
    words: str
    plan: int = 0

    def __str__(self) -> str:
        return f"{self.words}: plan now {self.plan} seed-epochs"

    def to_dict(self) -> dict[str, Any]:
        """The cut as stored (JSON)."""
        return {"changes": dict(self.changes), "words": self.words, "plan": self.plan}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Cut:
        """A cut as `to_dict` stored it."""
        return cls(dict(stored["changes"]), stored["words"], stored["plan"])


def apply_cuts(config: TuneConfig, cuts: list[Cut]) -> TuneConfig:
    """``config`` with each cut's changes made; ``config`` itself is left unchanged.

    Args:
        config: The configuration.
        cuts: The cuts, in order.

    Returns:
        A new configuration (the same object when there are no cuts).
    """
    for cut in cuts:
        config = config.with_changes(cut.changes)
    return config


@dataclass
class BudgetFit:
    """A configuration fitted into a budget.

    Args:
        config: The configuration with the cuts made (the same object when none was).
        limit: The budget in seed-epochs (GPU hours converted at ``examples_per_second``).
        unbudgeted: The plan's seed-epochs at most, before the cuts.
        planned: The plan's seed-epochs at most, after them.
        cuts: What was cut, in order.
        described: The budget in words, e.g. ``gpu_hours 2 = 360 seed-epochs at ...``.
        examples_per_second: The throughput GPU hours were converted at; None for a
            seed-epoch budget.
        reapplied: Whether the cuts are a stored fit made again (see `fit_budget`).
    """

    config: TuneConfig
    limit: int
    unbudgeted: int
    planned: int
    cuts: list[Cut] = field(default_factory=list)
    described: str = ""
    examples_per_second: float | None = None
    reapplied: bool = False

    def to_stored(self) -> dict[str, Any]:
        """What a phase's setup records of the fit: the budget it was made for, its limit in
        seed-epochs and its cuts (JSON), for `fit_budget` to make again."""
        assert self.config.budget is not None
        return {"budget": self.config.budget.model_dump(mode="json"), "limit": self.limit,
                "described": self.described, "examples_per_second": self.examples_per_second,
                "cuts": [cut.to_dict() for cut in self.cuts]}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The fit without the configuration (JSON-serialisable)."""
        return {
            "limit_seed_epochs": self.limit,
            "unbudgeted_seed_epochs": self.unbudgeted,
            "planned_seed_epochs": self.planned,
            "cuts": [str(cut) for cut in self.cuts],
            "described": self.described,
            "examples_per_second": self.examples_per_second,
        }


def fit_budget(
    config: TuneConfig,
    hp: HParams,
    n_train: int,
    *,
    has_test: bool,
    throughput: tuple[float, str] | None = None,
    stored: dict[str, Any] | None = None,
) -> BudgetFit | None:
    """Cut ``config`` until its planned seed-epochs fit ``config.budget``.

    A fit made earlier for the same budget (``stored``, from `BudgetFit.to_stored`) is made
    again as it was, whatever the throughput estimate says now: every start and every worker
    of a run plans alike. Another budget is fitted afresh: a larger one cuts less (and may
    give back seeds), a smaller one more.

    The cuts, in order: racing off; then one notch at a time in turn, two fewer
    regularization trials, one epoch off the top of the epochs phase's range, the
    learning-rate grid point farthest from the starting rate, one batch trial fewer; seeds
    last, down to two. Only the phases that run are cut.

    Args:
        config: The run's configuration (``budget``, the phases' sizes).
        hp: The starting configuration.
        n_train: Training examples.
        has_test: Whether the final evaluation runs (it is counted).
        throughput: ``(examples per second, source)`` to turn ``budget.gpu_hours`` into
            seed-epochs (see ``hptune.train.target.throughput_estimate``).
        stored: The fit the run recorded (``hptune.record.RunRecord.budget_fit``), if any.

    Returns:
        The fit; None without a budget.

    Raises:
        ConfigError: GPU hours with no throughput to convert them, or a budget below the
            method's minimum (the message gives the minimum).
    """
    budget = config.budget
    if budget is None:
        return None

    def cost(candidate: TuneConfig) -> int:
        phases = planned_phases(candidate, hp, n_train, has_test=has_test)
        return sum(p.seed_epochs for p in phases)

    if stored is not None and stored["budget"] == budget.model_dump(mode="json"):
        cuts = [Cut.from_dict(c) for c in stored["cuts"]]
        fitted = apply_cuts(config, cuts)
        limit, described, rate = stored["limit"], stored["described"], stored["examples_per_second"]
        fit = BudgetFit(fitted, limit, cost(config), cost(fitted), cuts, described, rate,
                        reapplied=True)  # fmt: skip
        if fit.planned <= limit:
            return fit
        # A fit stored by an older hptune whose plan now costs more (e.g. no cut for the
        # edge extensions it did not have): cut on from it, the same way on every start.
    else:
        limit, described, rate = _limit(budget, n_train, throughput)
        unbudgeted = cost(config)
        fit = BudgetFit(config, limit, unbudgeted, unbudgeted, [], described, rate)
        if unbudgeted <= limit:
            return fit
        fitted = config
    turns = [_fewer_regularization_trials, _narrower_epochs, _fewer_grid_points,
             _fewer_batch_trials]  # fmt: skip
    while cost(fitted) > limit:
        cut = _next_cut(fitted, turns, hp, n_train)
        if cut is None:
            minimum = cost(fitted)
            hours = (
                f" ({minimum * n_train / rate / 3600:.3g} GPU hours at {rate:.4g} examples/s)"
                if rate
                else ""
            )
            raise ConfigError(
                f"budget: {described} is below the method's minimum for this run, "
                f"{minimum} seed-epochs ({_minimum_text(fitted, hp, n_train, has_test)}). "
                f"Raise the budget to at least {minimum} seed-epochs{hours}, or run fewer "
                "phases (phases.run)"
            )
        fitted = apply_cuts(fitted, [cut])
        fit.cuts.append(replace(cut, plan=cost(fitted)))
    fit.config, fit.planned = fitted, cost(fitted)
    return fit


def _limit(
    budget: BudgetConfig, n_train: int, throughput: tuple[float, str] | None
) -> tuple[int, str, float | None]:
    """The budget in seed-epochs, in words, and the throughput GPU hours were converted at."""
    if budget.seed_epochs is not None:
        return budget.seed_epochs, f"seed_epochs {budget.seed_epochs}", None
    assert budget.gpu_hours is not None  # one of the two, by validation
    if throughput is None:
        raise ConfigError(
            f"budget.gpu_hours {budget.gpu_hours:g} cannot be planned: no throughput is "
            "known for this target (a CPU, or a GPU hptune has no speed for). Give "
            "budget.examples_per_second (the examples/s an earlier run's report shows), "
            "training.device (e.g. a100-80gb), or budget.seed_epochs instead"
        )
    rate, source = throughput
    limit = math.floor(budget.gpu_hours * 3600 * rate / n_train)
    described = (
        f"gpu_hours {budget.gpu_hours:g} = {limit} seed-epochs at {rate:.4g} examples/s "
        f"({source}; the run measures it)"
    )
    return limit, described, rate


def _next_cut(
    config: TuneConfig, turns: list[Callable[..., Cut | None]], hp: HParams, n_train: int
) -> Cut | None:
    """The next cut: racing off first, edge extensions next; then one notch of the first
    kind in ``turns`` that has one left (``turns`` is rotated, so the next notch comes from
    the next kind); seeds last. None when nothing is left to cut."""
    cut = _no_racing(config) or _no_edge_extensions(config)
    for turn in turns if cut is None else []:
        cut = turn(config, hp, n_train)
        if cut is not None:
            turns.append(turns.pop(turns.index(turn)))
            break
    strict = config.guardrails.strict and "two_seeds" not in config.guardrails.ignore
    # Under guardrails.strict, two seeds would be refused (two_seeds): keep three.
    return cut or _fewer_seeds(config, MIN_SEEDS + 1 if strict else MIN_SEEDS)


def _no_racing(config: TuneConfig) -> Cut | None:
    objective = config.objective
    if not objective.racing_seeds:
        return None
    before, after = objective.max_seeds, len(objective.seed_list)
    return Cut({"objective.max_seeds": after},
               f"racing off (objective.max_seeds {before} -> {after})")  # fmt: skip


def _no_edge_extensions(config: TuneConfig) -> Cut | None:
    phases = config.phases
    changes = {f"phases.{name}.extend_edges": 0 for name in ("learning_rate", "epochs")
               if name in phases.run and getattr(phases, name).extend_edges}  # fmt: skip
    if not changes:
        return None
    return Cut(changes, "edge extensions off (" + ", ".join(f"{k} 0" for k in changes) + ")")


def _fewer_regularization_trials(config: TuneConfig, hp: HParams, n_train: int) -> Cut | None:
    before = config.phases.regularization.n_trials
    if "regularization" not in config.phases.run or before <= MIN_REGULARIZATION_TRIALS:
        return None
    after = max(before - 2, MIN_REGULARIZATION_TRIALS)
    return Cut({"phases.regularization.n_trials": after},
               f"phases.regularization.n_trials {before} -> {after}")  # fmt: skip


def _narrower_epochs(config: TuneConfig, hp: HParams, n_train: int) -> Cut | None:
    from hptune.phases import default_epoch_range

    if "epochs" not in config.phases.run:
        return None
    low, high = config.phases.epochs.range or default_epoch_range(n_train)  # not extensions
    if high - 1 <= low:
        return None
    return Cut({"phases.epochs.range": [low, high - 1]},
               f"phases.epochs.range [{low}, {high}] -> [{low}, {high - 1}]")  # fmt: skip


def _fewer_grid_points(config: TuneConfig, hp: HParams, n_train: int) -> Cut | None:
    grid = list(config.phases.learning_rate.grid)
    if "learning_rate" not in config.phases.run or len(grid) <= MIN_GRID_POINTS:
        return None
    # The point farthest from the starting rate (on a log scale) goes; the higher on a tie.
    farthest = max(grid, key=lambda lr: (abs(math.log(lr / hp.learning_rate)), lr))
    return Cut({"phases.learning_rate.grid": [lr for lr in grid if lr != farthest]},
               f"learning rate {farthest:g} off the grid")  # fmt: skip


def _fewer_batch_trials(config: TuneConfig, hp: HParams, n_train: int) -> Cut | None:
    before = config.phases.batch_size.n_trials
    if "batch_size" not in config.phases.run or before <= MIN_BATCH_TRIALS:
        return None
    return Cut({"phases.batch_size.n_trials": before - 1},
               f"phases.batch_size.n_trials {before} -> {before - 1}")  # fmt: skip


def _fewer_seeds(config: TuneConfig, fewest: int) -> Cut | None:
    seeds = config.objective.seed_list
    if len(seeds) <= fewest:
        return None
    # An explicit list: reapplied anywhere, the cut means the same seeds; no racing above it.
    return Cut({"objective.seeds": seeds[:-1], "objective.max_seeds": len(seeds) - 1},
               f"objective.seeds {len(seeds)} -> {len(seeds) - 1}")  # fmt: skip


def _minimum_text(config: TuneConfig, hp: HParams, n_train: int, has_test: bool) -> str:
    phases = planned_phases(config, hp, n_train, has_test=has_test)
    parts = ", ".join(f"{p.phase} {p.seed_epochs}" for p in phases)
    return f"{len(config.objective.seed_list)} seeds, no racing: {parts}"
