"""What the phases cost, and a compute budget: fitted before the run, filled during it.

Costs are counted in seed-epochs: one epoch of one seed's run over the training set. Each
phase states its own upper bound (``hptune.phases.Phase.planned``); `planned_phases` shows
what racing's extra seeds may add ("up to"). With ``budget:``, `fit_budget` cuts the plan
without racing until it fits, or refuses a budget below the method's minimum. During the run
``hptune.ledger.BudgetLedger`` keeps to it; racing, then the phases' spare trials, are paid
from what it leaves once the phases still to come are paid for (`planned_after`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hptune.exceptions import ConfigError
from hptune.phases import PHASES, Cut, Phase, racing_trials_at_most

if TYPE_CHECKING:
    from hptune.config import BudgetConfig, TuneConfig
    from hptune.hparams import HParams

__all__ = [
    "BudgetFit",
    "Cut",
    "PlannedPhase",
    "apply_cuts",
    "fit_budget",
    "planned_after",
    "planned_phases",
]

#: The fewest seeds a cut leaves (each phase states the fewest of its own: ``budget_cut``).
MIN_SEEDS = 2


@dataclass(frozen=True)
class PlannedPhase:
    """One phase's budget: trials x seeds x epochs, as an upper bound on seed-epochs.

    Args:
        phase: The phase's name.
        trials: Trials it runs at most.
        epochs: Epochs per trial, as shown: ``2``, ``2-4`` or ``<= 4``.
        seed_epochs: Epochs of all its trials on every seed, racing's "up to" included.
        what: The phase in a few words.
        seeds: Paired seeds per trial (racing may add up to ``objective.max_seeds``).
        most_epochs: The most epochs a trial trains.
        racing: The part of ``seed_epochs`` racing's extra seeds may take (a budget fit
            leaves it out: under a budget, racing takes what the budget has left).
    """

    phase: str
    trials: int
    epochs: str
    seed_epochs: int
    what: str
    seeds: int = 0
    most_epochs: int = 0
    racing: int = 0

    @property
    def without_racing(self) -> int:
        """Seed-epochs of its planned trials on their seeds, racing left out."""
        return self.seed_epochs - self.racing


def planned_phases(
    config: TuneConfig, hp: HParams, n_train: int, *, has_test: bool
) -> list[PlannedPhase]:
    """Each configured phase's budget in trials and seed-epochs (an upper bound).

    Each phase states its own budget (``hptune.phases.Phase.planned``); a phase that
    decides the epochs passes its upper bound to the phases after it. Racing's extra seeds
    (``objective.max_seeds``) are shown apart (``PlannedPhase.racing``): the best and every
    contender, each once per extra seed, at the phase's longest run.

    Args:
        config: The run's configuration.
        hp: The starting configuration.
        n_train: Training examples.
        has_test: Whether the data has a test split (the final evaluation runs).

    Returns:
        One row per phase that would run, in order.
    """
    return _planned(config, hp, n_train, _phase_names(config, has_test))


def planned_after(
    config: TuneConfig, base: HParams, n_train: int, phase: str, *, has_test: bool
) -> dict[str, int]:
    """The seed-epochs (racing left out) each phase after ``phase`` is planned to train.

    Planned from ``base``, the configuration ``phase`` starts from, with ``phase``'s own
    bounds applied (the epochs phase passes its longest run on): what racing in ``phase``
    must leave to the phases still to come.

    Args:
        config: The run's (fitted) configuration.
        base: The configuration ``phase`` starts from.
        n_train: Training examples.
        phase: The phase that asks; every phase of the run when it is not one of them.
        has_test: Whether the data has a test split (the final evaluation runs).

    Returns:
        ``{phase name: seed-epochs}``, in the order they run.
    """
    names = _phase_names(config, has_test)
    start = names.index(phase) if phase in names else 0  # its own bounds, then the rest
    rows = _planned(config, base, n_train, names[start:])[1 if phase in names else 0 :]
    return {p.phase: p.without_racing for p in rows}


def _phase_names(config: TuneConfig, has_test: bool) -> list[str]:
    names: list[str] = list(config.phases.run)
    if config.phases.test_evaluation and has_test:
        names.append("final")
    return names


def _planned(config: TuneConfig, hp: HParams, n_train: int, names: list[str]) -> list[PlannedPhase]:
    """The rows of `planned_phases` for ``names``, planned in turn from ``hp``."""
    n = len(config.objective.seed_list)
    extra = len(config.objective.racing_seeds)
    bounded: set[str] = set()
    planned: list[PlannedPhase] = []
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
        # The trial at the incoming configuration is read back when a phase ran before.
        read_back = budget.read_back * hp.epochs if planned else 0
        seed_epochs = n * (budget.seed_epochs - read_back) + racing
        planned.append(
            PlannedPhase(name, budget.trials, epochs, seed_epochs, what, n, high, racing)
        )
        hp = hp.replace(**budget.bounds)
        bounded |= set(budget.bounds)
    return planned


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
        unbudgeted: The plan's seed-epochs at most, racing left out, before the cuts.
        planned: The plan's seed-epochs at most, racing left out, after them.
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

    @property
    def racing(self) -> int:
        """What racing may use at run time, at most: the budget less the plan."""
        return max(self.limit - self.planned, 0)

    def to_stored(self) -> dict[str, Any]:
        """What a phase's setup records of the fit: the budget it was made for, its limit in
        seed-epochs and its cuts (JSON), for `fit_budget` to make again."""
        assert self.config.budget is not None
        return {
            "budget": self.config.budget.model_dump(mode="json"),
            "limit": self.limit,
            "described": self.described,
            "examples_per_second": self.examples_per_second,
            "cuts": [cut.to_dict() for cut in self.cuts],
        }

    def to_dict(self) -> dict[str, Any]:
        """The fit without the configuration (JSON-serialisable)."""
        return {
            "limit_seed_epochs": self.limit,
            "unbudgeted_seed_epochs": self.unbudgeted,
            "planned_seed_epochs": self.planned,
            "racing_seed_epochs": self.racing,
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
    """Cut ``config`` until its planned seed-epochs, racing left out, fit ``config.budget``.

    A fit made earlier for the same budget (``stored``, from `BudgetFit.to_stored`) is made
    again as it was, whatever the throughput estimate says now: every start and every worker
    of a run plans alike. Another budget is fitted afresh: a larger one cuts less (and may
    give back seeds), a smaller one more.

    Racing is neither counted nor cut: at run time it, then the phases' spare trials, are
    paid from what the budget has left after the plan of the phases still to come. The cuts,
    in order (`_next_cut`, only of the phases that run): edge extensions off; the
    regularization phase down to its floor (its extra candidates weigh least against the
    seeds every earlier decision rests on); seeds, one at a time, down to two (three under
    ``guardrails.strict``; ``max_seeds`` kept for racing); then one notch of each phase in
    turn (``Phase.budget_cut``: the fewest epoch count, the most crowded interior rate, one
    batch trial).

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
    cost = _Cost(hp, n_train, has_test)
    if stored is not None and stored["budget"] == budget.model_dump(mode="json"):
        fit = _refit(config, stored, cost)
        if fit.planned <= fit.limit:
            return fit
        # A fit stored by an older hptune whose plan now costs more (e.g. no cut for the
        # edge extensions it did not have): cut on from it, the same way on every start.
    else:
        limit, described, rate = _limit(budget, n_train, throughput)
        unbudgeted = cost(config)
        fit = BudgetFit(config, limit, unbudgeted, unbudgeted, [], described, rate)
        if unbudgeted <= limit:
            return fit
    return _cut_down(fit, cost)


@dataclass(frozen=True)
class _Cost:
    """The plan's seed-epochs at most, racing left out, for a configuration planned from
    ``hp``."""

    hp: HParams
    n_train: int
    has_test: bool

    def __call__(self, candidate: TuneConfig) -> int:
        phases = planned_phases(candidate, self.hp, self.n_train, has_test=self.has_test)
        return sum(p.without_racing for p in phases)


def _refit(config: TuneConfig, stored: dict[str, Any], cost: _Cost) -> BudgetFit:
    """The fit ``stored`` made again as it was."""
    cuts = [Cut.from_dict(c) for c in stored["cuts"]]
    fitted = apply_cuts(config, cuts)
    limit, described, rate = stored["limit"], stored["described"], stored["examples_per_second"]
    return BudgetFit(
        fitted, limit, cost(config), cost(fitted), cuts, described, rate, reapplied=True
    )


def _cut_down(fit: BudgetFit, cost: _Cost) -> BudgetFit:
    """``fit`` with cuts made (`_next_cut`) until its plan fits its limit.

    Raises:
        ConfigError: Nothing is left to cut and the plan is still over the limit.
    """
    fitted, hp, n_train, rate = fit.config, cost.hp, cost.n_train, fit.examples_per_second
    turns = sorted(
        (phase for phase in PHASES.values() if phase.cut_turn is not None),
        key=lambda phase: phase.cut_turn or 0,
    )
    while cost(fitted) > fit.limit:
        cut = _next_cut(fitted, turns, hp, n_train)
        if cut is None:
            minimum = cost(fitted)
            hours = (
                f" ({minimum * n_train / rate / 3600:.3g} GPU hours at {rate:.4g} examples/s)"
                if rate
                else ""
            )
            raise ConfigError(
                f"budget: {fit.described} is below the method's minimum for this run, "
                f"{minimum} seed-epochs ({_minimum_text(fitted, hp, n_train, cost.has_test)}). "
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
    config: TuneConfig, turns: list[type[Phase]], hp: HParams, n_train: int
) -> Cut | None:
    """The next cut: edge extensions off first; then the phases cut before seeds
    (``Phase.cut_before_seeds``) down to their floor; then seeds, down to the fewest; then one
    notch of the first phase in ``turns`` that runs and has one left (``turns`` is rotated,
    so the next notch comes from the next phase). None when nothing is left to cut."""
    strict = config.guardrails.strict and "two_seeds" not in config.guardrails.ignore
    fewest = MIN_SEEDS + 1 if strict else MIN_SEEDS  # strict refuses two seeds: keep three
    run = [phase for phase in turns if phase.name in config.phases.run]
    early = (p.budget_cut(config, hp, n_train) for p in run if p.cut_before_seeds)
    cut = _no_edge_extensions(config) or next(filter(None, early), _fewer_seeds(config, fewest))
    for phase in run if cut is None else []:
        if (cut := phase.budget_cut(config, hp, n_train)) is not None:
            turns.append(turns.pop(turns.index(phase)))
            break
    return cut


def _no_edge_extensions(config: TuneConfig) -> Cut | None:
    changes: dict[str, Any] = {}
    for name in config.phases.run:  # in the order the phases run
        changes.update(PHASES[name].edge_cut(config))
    if not changes:
        return None
    return Cut(changes, "edge extensions off (" + ", ".join(f"{k} 0" for k in changes) + ")")


def _fewer_seeds(config: TuneConfig, fewest: int) -> Cut | None:
    seeds = config.objective.seed_list
    if len(seeds) <= fewest:
        return None
    # An explicit list (the same seeds wherever reapplied); max_seeds stays, for racing.
    return Cut({"objective.seeds": seeds[:-1]}, f"objective.seeds {len(seeds)} -> {len(seeds) - 1}")


def _minimum_text(config: TuneConfig, hp: HParams, n_train: int, has_test: bool) -> str:
    phases = planned_phases(config, hp, n_train, has_test=has_test)
    parts = ", ".join(f"{p.phase} {p.without_racing}" for p in phases)
    return f"{len(config.objective.seed_list)} seeds, racing left out: {parts}"
