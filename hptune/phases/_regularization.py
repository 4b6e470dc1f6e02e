from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hptune._lazy import optuna
from hptune.config import RegularizationPhaseConfig, check_rate_factors, register_phase
from hptune.diagnose import overfit_epochs
from hptune.keys import TrialStatus
from hptune.phases._base import PhaseBudget, TrialOutcome
from hptune.phases._cut import Cut
from hptune.phases._grid import GridPhase
from hptune.phases._local_rates import RATE_FACTORS, rate_points
from hptune.phases._ranked import Choice
from hptune.phases._ranking import NoiseRanking
from hptune.phases._regularization_epochs import at_incoming_count, at_other_counts, spare_counts
from hptune.phases._regularization_space import (
    RegularizationSpace,
    choices,
    describe,
    same_params,
    trainer_defaults,
)
from hptune.phases._regularization_words import at_rate, case_against_incoming, rates_won
from hptune.search import epoch_pruner
from hptune.seeds import Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hptune.config import TuneConfig
    from hptune.diagnose import Diagnosis
    from hptune.hparams import HParams
    from hptune.seeds import Margin
    from hptune.train import RunnerBase

__all__ = ["RegularizationPhase"]

_PARAMS = ("weight_decay", "scheduler", "warmup_ratio")
#: The fewest trials a budget's cut leaves.
MIN_REGULARIZATION_TRIALS = 2


@register_phase
class RegularizationPhase(GridPhase):
    """Phase 5: weight decay, scheduler and warmup, each candidate at its own best rate.

    The candidates are ``candidates`` when given, else the incoming configuration and one per
    other scheduler, their weight decay and warmup drawn space-filling from the ranges
    (``RegularizationSpace``). Each is tried at the incoming learning rate times each of
    ``rate_factors``: the rate is this phase's nuisance hyperparameter (a constant rate wants
    a lower one than a linear decay), so a schedule is compared at its own best rate from a
    local set around the incoming one, never pushed past that set's edges. Every (candidate,
    rate) runs once, the incoming configuration at its own rate first, so every other trial
    has a paired reference; the paired pruner stops trials that fall behind. A rate that
    diverges ends its trial as diverged, with no remedy (it is a probe).

    Every trial trains at the incoming epoch count; under a compute budget with room once
    they and racing are done, the best configurations are also tried at the epochs phase's
    other counts (``epoch_counts``, `at_other_counts`): a schedule changes the best count.

    Decision rule: the best seed mean, with the rate (and count) it won at, unless the incoming
    configuration is shown equivalent to it (their paired difference is within the
    equivalence margin): a change that does not matter is not made. An incoming configuration
    merely not told apart from the best (after racing) does not stay: the best mean wins.

    Args:
        n_trials: The most trials, in the grid's order (None: every candidate at every rate).
        weight_decay: The weight-decay range, drawn on a log scale.
        warmup_ratio: The warmup-ratio range.
        schedulers: The learning-rate schedules to try; by default ``linear``, ``cosine``
            and ``constant_with_warmup``.
        pruning: Stop trials that fall behind with the paired pruner.
        sampler_seed: The seed of the drawn candidates' sequence.
        candidates: The candidates (``weight_decay``, ``scheduler``, ``warmup_ratio`` and
            ``space`` keys; one left out keeps the incoming value); None: drawn.
        rate_factors: The factors of the incoming learning rate each candidate is tried at.
        epoch_counts: The other epoch counts a budget's spare room may try configurations at
            (`spare_counts`); empty: none.
        incoming: The configuration the phase starts from (its rate, and the values a
            candidate leaves out); ``initial_params`` sets it when not given.
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.
        margin: The equivalence margin of the decision; None derives it from the seed noise.
        space: More ``TrainingArguments`` keys searched with the three: each a
            ``(low, high, log)`` range or a list of choices.
        defaults: Each ``space`` key's value when the incoming configuration has none
            (``training.args``', else the Trainer's default).

    Raises:
        ValueError: ``n_trials`` under 2, a range that is not ``0 < low < high < 1``, rate
            factors without 1.0, or a negative ``max_retries``.
    """

    name = "regularization"
    order = 5
    title = "5. Weight decay, scheduler, warmup"
    params = (*_PARAMS, "learning_rate")
    options_model = RegularizationPhaseConfig
    in_method = True
    cut_turn = 0
    cut_before_seeds = True
    uses_incoming = True
    remedies_divergence = False

    def __init__(
        self,
        *,
        n_trials: int | None = None,
        weight_decay: tuple[float, float] = (0.01, 0.1),
        warmup_ratio: tuple[float, float] = (0.05, 0.10),
        schedulers: list[str] | None = None,
        pruning: bool = True,
        sampler_seed: int = 0,
        candidates: list[dict[str, Any]] | None = None,
        rate_factors: Sequence[float] = RATE_FACTORS,
        epoch_counts: Sequence[int] = (),
        incoming: HParams | None = None,
        max_retries: int = 2,
        notes: Sequence[str] = (),
        margin: Margin | None = None,
        space: dict[str, tuple[float, float, bool] | list[Any]] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(max_retries=max_retries, notes=notes, margin=margin)
        if n_trials is not None and n_trials < 2:
            raise ValueError(f"n_trials must be at least 2, got {n_trials=}")
        for name, (low, high) in (("weight_decay", weight_decay), ("warmup_ratio", warmup_ratio)):
            if not 0 < low < high < 1:
                raise ValueError(f"{name} needs 0 < low < high < 1, got {(low, high)=}")
        self._n_trials = n_trials
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.schedulers = list(schedulers or ["linear", "cosine", "constant_with_warmup"])
        self.pruning = pruning
        self.sampler_seed = sampler_seed
        self.space = dict(space or {})
        self.defaults = dict(defaults or {})
        self.given = [dict(c) for c in candidates] if candidates is not None else None
        self.rate_factors = check_rate_factors(list(rate_factors))
        self.epoch_counts = sorted(set(epoch_counts))
        self.incoming = incoming
        self.region = RegularizationSpace(
            weight_decay, warmup_ratio, self.schedulers, self.space, sampler_seed
        )

    @classmethod
    def configured(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, incoming: Sequence[Diagnosis]
    ) -> dict[str, Any]:
        """The configured space; when the incoming configuration overfits, weight decay is
        drawn from the upper half of its range (from the geometric middle).

        Args:
            config: The run's configuration (``phases.regularization``).
            base: The configuration the phase starts from.
            runner: The run's trainer (its training-set size: the presets' epoch range).
            incoming: How ``base`` trained in an earlier phase, seed by seed.

        Returns:
            The constructor's arguments.
        """
        options = config.phases.regularization
        weight_decay = options.weight_decay
        notes = []
        if overfit_epochs(incoming) and options.candidates is None:
            middle = round((weight_decay[0] * weight_decay[1]) ** 0.5, 4)
            notes.append(
                f"the incoming configuration overfits, so weight decay was searched in "
                f"[{middle:g}, {weight_decay[1]:g}]"
            )
            weight_decay = (middle, weight_decay[1])
        space: dict[str, tuple[float, float, bool] | list[Any]] = {
            key: spec if isinstance(spec, list) else (spec.low, spec.high, spec.log)
            for key, spec in options.space.items()
        }
        given = options.candidates
        return {
            "n_trials": options.n_trials,
            "weight_decay": weight_decay,
            "warmup_ratio": options.warmup_ratio,
            "schedulers": list(options.schedulers),
            "pruning": options.pruning,
            "sampler_seed": options.sampler_seed,
            "candidates": None
            if given is None
            else [c.model_dump(exclude_none=True) for c in given],
            "rate_factors": list(options.rate_factors),
            "epoch_counts": spare_counts(config, base, runner.data.n_train),
            "incoming": base,
            "space": space,
            "defaults": trainer_defaults(config, list(space)),
            "notes": notes,
        }

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.regularization
        # given candidates follow the incoming configuration (one equal to it is left out)
        given, factors = options.candidates, len(options.rate_factors)
        n_candidates = 1 + len(given) if given else len(options.schedulers)
        if not given and options.n_trials is not None:  # as many drawn as n_trials asks
            n_candidates = max(n_candidates, -(-options.n_trials // factors))
        trials = n_candidates * factors
        if options.n_trials is not None:
            trials = min(trials, options.n_trials)
        rates = ", ".join(f"x{f:g}" for f in sorted(options.rate_factors))
        what = (
            f"weight decay, scheduler, warmup: {n_candidates} candidates, each at the "
            f"learning rate {rates}" + (", paired pruning" if options.pruning else "")
        )
        region = RegularizationSpace(
            options.weight_decay, options.warmup_ratio, list(options.schedulers)
        )
        incoming = {
            "weight_decay": base.weight_decay,
            "scheduler": base.scheduler,
            "warmup_ratio": base.warmup_ratio,
        }
        # the incoming configuration at its own rate, when it is a candidate
        read_back = int(bool(options.candidates) or region.contains(incoming))
        return replace(PhaseBudget.full(trials, base.epochs, what), read_back=read_back)

    @classmethod
    def budget_cut(cls, config: TuneConfig, base: HParams, n_train: int) -> Cut | None:
        """Two trials fewer, the last candidates' rates first, down to the incoming
        configuration and one changed candidate at each of its rates (4 by default). On the
        way the last candidate left may keep fewer rates than the others (a cut of two, at
        three rates a candidate)."""
        before = cls.planned(config, base, n_train).trials
        fewest = max(MIN_REGULARIZATION_TRIALS, 1 + len(config.phases.regularization.rate_factors))
        return Cut.fewer_trials(cls.name, before, 2, min(fewest, before))

    def create_pruner(self) -> optuna.pruners.BasePruner:
        if not self.pruning:
            return super().create_pruner()
        # A constant rate is behind a decaying one mid-run whatever its end, and a shorter
        # decay anneals sooner: compare like with like.
        return epoch_pruner(shape_params=("scheduler", "epochs"))

    def candidates(self) -> list[dict[str, Any]]:
        """The candidates, the incoming configuration first (given candidates: always; drawn
        ones: when it lies in the ranges).

        Returns:
            Each candidate's values of the phase's parameters (without the rate).

        Raises:
            ValueError: The phase has no incoming configuration yet.
        """
        if self.incoming is None:
            raise ValueError("the regularization phase needs its incoming configuration")
        incoming = self._params_of(self.incoming)
        if self.given is None:
            count = len(self.schedulers)
            if self._n_trials is not None:
                count = max(count, -(-self._n_trials // len(self.rate_factors)))
            return self.region.drawn(incoming, count)
        # Given candidates follow the incoming configuration, the reference of every other.
        chosen = [incoming]
        for candidate in ({**incoming, **c} for c in self.given):
            if not any(same_params(candidate, c, self._params) for c in chosen):
                chosen.append(candidate)
        return chosen

    def grid_points(self) -> list[dict[str, Any]]:
        points = self._all_points()
        return points[: self._n_trials] if self._n_trials is not None else points

    def n_remaining(self, trials: list[optuna.trial.FrozenTrial]) -> int:
        return super().n_remaining(at_incoming_count(trials, self.incoming))

    def _all_points(self) -> list[dict[str, Any]]:
        """Every candidate at every rate, in the grid's order (before ``n_trials``)."""
        candidates = self.candidates()  # refuses a phase without its incoming configuration
        assert self.incoming is not None
        incoming = self._params_of(self.incoming)
        points = rate_points(
            candidates,
            self.incoming.learning_rate,
            self.rate_factors,
            reference=same_params(candidates[0], incoming, self._params),
        )
        return [{**point, "epochs": self.incoming.epochs} for point in points]  # see suggest

    def initial_params(self, base: HParams) -> list[dict[str, Any]]:
        if self.incoming is None:
            self.incoming = base
        return self.grid_points()

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        self.initial_params(base)
        # The choices of the whole grid, whatever n_trials (a budget refit) cuts from it: a
        # categorical's choices cannot change within a study.
        points = self._all_points()
        values = {
            k: trial.suggest_categorical(k, choices(points, k)) for k in points[0] if k != "epochs"
        }
        # every trial is queued with its count; an int's range may change (a budget refit)
        counts = [base.epochs, *self.epoch_counts]
        values["epochs"] = trial.suggest_int("epochs", min(counts), max(counts))
        return base.replace(
            learning_rate=values["learning_rate"],
            epochs=values["epochs"],
            weight_decay=values["weight_decay"],
            scheduler=values["scheduler"],
            warmup_ratio=values["warmup_ratio"],
            args={**dict(base.args), **{k: values[k] for k in self.space}},
        )

    @property
    def _params(self) -> tuple[str, ...]:
        return (*_PARAMS, *self.space)

    def spare_points(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome]
    ) -> list[dict[str, Any]]:
        if not self.epoch_counts or self.incoming is None:
            return []
        reference = self._reference(ranking.ranked, self.incoming)
        counts = self.epoch_counts
        return at_other_counts(
            ranking, outcomes, counts, self._params, self.incoming.epochs, reference
        )

    def _reference(self, outcomes: list[TrialOutcome], base: HParams) -> TrialOutcome | None:
        """The incoming configuration's trial at its own rate and count, if any."""
        incoming = {**self._params_of(base), "learning_rate": base.learning_rate}
        incoming["epochs"] = base.epochs
        names = (*self._params, "learning_rate", "epochs")
        at = [({"epochs": base.epochs, **o.params}, o) for o in outcomes if self._decidable(o)]
        return next((o for p, o in at if same_params(p, incoming, names)), None)

    def _columns(self, outcome: TrialOutcome, base: HParams) -> dict[str, Any]:
        names = (*self._params, "learning_rate", "epochs")
        return {k: outcome.params.get(k) for k in names}

    def _decidable(self, outcome: TrialOutcome) -> bool:
        return all(k in outcome.params for k in (*self._params, "learning_rate"))

    def _none_finished(self, base: HParams) -> str:
        return "no trial finished; keeping the incoming weight decay, scheduler and warmup"

    def _summary_head(self, ranking: NoiseRanking | None) -> dict[str, Any]:
        return {} if ranking is None else {"best_by_mean": ranking.best.params}

    def _choose(
        self, ranking: NoiseRanking, outcomes: list[TrialOutcome], base: HParams, direction: str
    ) -> Choice:
        n_pruned = sum(1 for o in outcomes if o.status == TrialStatus.PRUNED)
        pruned = f"; {n_pruned} of {len(outcomes)} trials pruned" if n_pruned else ""
        best = ranking.best
        incoming = {**self._params_of(base), "learning_rate": base.learning_rate}
        reference = self._reference(self._finished(outcomes), base)
        evidence = ranking.evidence(lambda o: at_rate(o.params, base), limit=2)
        rates = {"rates_won": rates_won(ranking, self._params, base)}
        if reference is not None and reference is not best and ranking.n_seeds > 1:
            verdict = ranking.comparisons[reference.number].verdict
            if verdict == Verdict.EQUIVALENT:
                return Choice(
                    {},
                    reference.mean,
                    "no_change_equivalent",
                    f"the best trial ({at_rate(best.params, base)}) is equivalent to the "
                    f"incoming configuration ({describe(incoming)}): kept the incoming one "
                    f"({ranking.describe(reference.number)}; {evidence}){pruned}",
                    rates,
                )
        chosen: dict[str, Any] = {k: best.params[k] for k in (*_PARAMS, "learning_rate")}
        if best.params.get("epochs", base.epochs) != base.epochs:  # a spare trial's count
            chosen["epochs"] = best.params["epochs"]
        if self.space:  # the searched TrainingArguments values, over the incoming ones
            chosen["args"] = {**dict(base.args), **{k: best.params[k] for k in self.space}}
        case, why = case_against_incoming(ranking, reference)
        reason = f"{at_rate(best.params, base)} has the best mean; {why} ({evidence}){pruned}"
        return Choice(chosen, best.mean, case, reason, rates)

    def _params_of(self, hp: HParams) -> dict[str, Any]:
        args = dict(hp.args)
        return {
            "weight_decay": hp.weight_decay,
            "scheduler": hp.scheduler,
            "warmup_ratio": hp.warmup_ratio,
            **{k: args.get(k, self.defaults.get(k)) for k in self.space},
        }
