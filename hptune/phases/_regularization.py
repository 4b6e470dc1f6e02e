from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

from hptune._lazy import optuna, transformers
from hptune.config import RegularizationPhaseConfig, register_phase
from hptune.diagnose import overfit_epochs
from hptune.keys import TrialStatus
from hptune.phases._base import PhaseBudget, TrialOutcome
from hptune.phases._cut import Cut
from hptune.phases._ranked import Choice, RankedPhase
from hptune.phases._ranking import NoiseRanking
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
class RegularizationPhase(RankedPhase):
    """Phase 5: weight decay, scheduler and warmup, sampled jointly under a trial budget.

    Multivariate TPE models the three together (warmup and scheduler interact); the first
    trial is the incoming configuration when it lies in the space, so every other trial has a
    paired reference; the paired pruner stops trials that fall behind.

    Decision rule: the best seed mean, unless the incoming configuration is shown equivalent
    to it (their paired difference is within the equivalence margin): a change that does
    not matter is not made. An incoming configuration merely not told apart from the best
    (after racing) does not stay: the best mean wins.

    Args:
        n_trials: Trials to run.
        weight_decay: The weight-decay range, searched on a log scale.
        warmup_ratio: The warmup-ratio range.
        schedulers: The learning-rate schedules to try; by default ``linear``, ``cosine``
            and ``constant_with_warmup``.
        pruning: Stop trials that fall behind with the paired pruner.
        sampler_seed: The seed of the TPE sampler.
        space: More ``TrainingArguments`` keys searched with the three: each a
            ``(low, high, log)`` range or a list of choices.
        defaults: Each ``space`` key's value when the incoming configuration has none
            (``training.args``', else the Trainer's default).
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.
        margin: The equivalence margin of the decision; None derives it from the seed noise.

    Raises:
        ValueError: ``n_trials`` under 2, a range that is not ``0 < low < high < 1``, or a
            negative ``max_retries``.
    """

    name = "regularization"
    order = 5
    title = "5. Weight decay, scheduler, warmup"
    params = _PARAMS
    options_model = RegularizationPhaseConfig
    in_method = True
    cut_turn = 0
    uses_incoming = True

    def __init__(
        self,
        *,
        n_trials: int = 8,
        weight_decay: tuple[float, float] = (0.01, 0.1),
        warmup_ratio: tuple[float, float] = (0.05, 0.10),
        schedulers: list[str] | None = None,
        pruning: bool = True,
        sampler_seed: int = 0,
        max_retries: int = 2,
        notes: Sequence[str] = (),
        margin: Margin | None = None,
        space: dict[str, tuple[float, float, bool] | list[Any]] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(max_retries=max_retries, notes=notes, margin=margin)
        if n_trials < 2:
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

    @classmethod
    def configured(
        cls, config: TuneConfig, base: HParams, runner: RunnerBase, incoming: Sequence[Diagnosis]
    ) -> dict[str, Any]:
        """The configured space; when the incoming configuration overfits, weight decay is
        searched in the upper half of its range (from the geometric middle).

        Args:
            config: The run's configuration (``phases.regularization``).
            base: The configuration the phase starts from.
            runner: The run's trainer (not used by this phase).
            incoming: How ``base`` trained in an earlier phase, seed by seed.

        Returns:
            The constructor's arguments.
        """
        options = config.phases.regularization
        weight_decay = options.weight_decay
        notes = []
        if overfit_epochs(incoming):
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
        return {
            "n_trials": options.n_trials,
            "weight_decay": weight_decay,
            "warmup_ratio": options.warmup_ratio,
            "schedulers": list(options.schedulers),
            "pruning": options.pruning,
            "sampler_seed": options.sampler_seed,
            "space": space,
            "defaults": _trainer_defaults(config, list(space)),
            "notes": notes,
        }

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        options = config.phases.regularization
        what = "weight decay, scheduler, warmup (multivariate TPE" + (
            ", paired pruning)" if options.pruning else ")"
        )
        return PhaseBudget.full(options.n_trials, base.epochs, what)

    @classmethod
    def budget_cut(cls, config: TuneConfig, base: HParams, n_train: int) -> Cut | None:
        """Two trials fewer, down to ``MIN_REGULARIZATION_TRIALS``."""
        before = config.phases.regularization.n_trials
        return Cut.fewer_trials(cls.name, before, 2, MIN_REGULARIZATION_TRIALS)

    def create_sampler(self) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            # multivariate and constant_liar are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=self.sampler_seed,
                multivariate=True,
                n_startup_trials=max(2, min(4, self._n_trials // 2)),
                constant_liar=True,  # workers running in parallel spread their proposals
            )

    def create_pruner(self) -> optuna.pruners.BasePruner:
        if not self.pruning:
            return super().create_pruner()
        # A constant rate is behind a decaying one mid-run whatever its end: compare like
        # with like.
        return epoch_pruner(shape_params=("scheduler",))

    def n_trials(self) -> int:
        return self._n_trials

    def initial_params(self, base: HParams) -> list[dict[str, Any]]:
        params = self._params_of(base)
        return [params] if self._in_space(params) else []

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        searched = {key: _suggest(trial, key, spec) for key, spec in self.space.items()}
        return base.replace(
            weight_decay=trial.suggest_float("weight_decay", *self.weight_decay, log=True),
            scheduler=trial.suggest_categorical("scheduler", self.schedulers),
            warmup_ratio=trial.suggest_float("warmup_ratio", *self.warmup_ratio),
            args={**dict(base.args), **searched},
        )

    @property
    def _params(self) -> tuple[str, ...]:
        return (*_PARAMS, *self.space)

    def _columns(self, outcome: TrialOutcome, base: HParams) -> dict[str, Any]:
        return {k: outcome.params.get(k) for k in self._params}

    def _decidable(self, outcome: TrialOutcome) -> bool:
        return all(k in outcome.params for k in self._params)

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
        incoming = self._params_of(base)
        finished = self._finished(outcomes)
        reference = next((o for o in finished if _same(o.params, incoming, self._params)), None)
        evidence = ranking.evidence(lambda o: _describe(o.params), limit=2)
        if reference is not None and reference is not best and ranking.n_seeds > 1:
            verdict = ranking.comparisons[reference.number].verdict
            if verdict == Verdict.EQUIVALENT:
                return Choice(
                    {},
                    reference.mean,
                    "no_change_equivalent",
                    f"the best trial ({_describe(best.params)}) is equivalent to the incoming "
                    f"configuration ({_describe(incoming)}): kept the incoming one "
                    f"({ranking.describe(reference.number)}; {evidence}){pruned}",
                )
        chosen: dict[str, Any] = {k: best.params[k] for k in _PARAMS}
        if self.space:  # the searched TrainingArguments values, over the incoming ones
            chosen["args"] = {**dict(base.args), **{k: best.params[k] for k in self.space}}
        case, why = _case(ranking, reference)
        reason = f"{_describe(chosen)} has the best mean; {why} ({evidence}){pruned}"
        return Choice(chosen, best.mean, case, reason)

    def _params_of(self, hp: HParams) -> dict[str, Any]:
        args = dict(hp.args)
        return {
            "weight_decay": hp.weight_decay,
            "scheduler": hp.scheduler,
            "warmup_ratio": hp.warmup_ratio,
            **{k: args.get(k, self.defaults.get(k)) for k in self.space},
        }

    def _in_space(self, params: dict[str, Any]) -> bool:
        return (
            self.weight_decay[0] <= params["weight_decay"] <= self.weight_decay[1]
            and self.warmup_ratio[0] <= params["warmup_ratio"] <= self.warmup_ratio[1]
            and params["scheduler"] in self.schedulers
            and all(_within(params[k], spec) for k, spec in self.space.items())
        )


def _case(ranking: NoiseRanking, reference: TrialOutcome | None) -> tuple[str, str]:
    """The branch of the rule when the best trial wins, and why, against the incoming one."""
    if ranking.n_seeds < 2:
        return "single_seed", "with one seed there is no noise estimate"
    if reference is ranking.best:
        return "incoming_is_best", "the incoming configuration is best"
    if reference is None:
        return "best_mean", "the incoming configuration was outside the search space"
    if ranking.comparisons[reference.number].verdict == Verdict.WORSE:
        return "better_beyond_noise", (
            f"the incoming configuration is {ranking.describe(reference.number)}"
        )
    return "best_mean_undecided", (
        f"the incoming configuration is not told apart from it nor shown equivalent "
        f"({ranking.describe(reference.number)}), so the best mean wins"
    )


def _suggest(trial: optuna.Trial, key: str, spec: tuple[float, float, bool] | list[Any]) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(key, spec)
    low, high, log = spec
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(key, low, high, log=log)
    return trial.suggest_float(key, low, high, log=log)


def _within(value: Any, spec: tuple[float, float, bool] | list[Any]) -> bool:
    if isinstance(spec, list):
        return value in spec
    return isinstance(value, int | float) and spec[0] <= value <= spec[1]


def _trainer_defaults(config: TuneConfig, keys: list[str]) -> dict[str, Any]:
    """Each key's value in ``training.args``, else the installed Trainer's default."""
    if not keys:
        return {}
    fields = {f.name: f.default for f in dataclasses.fields(transformers.TrainingArguments)}
    return {k: config.training.args.get(k, fields.get(k)) for k in keys}


def _same(params: dict[str, Any], other: dict[str, Any], names: Sequence[str]) -> bool:
    return all(
        abs(params[k] - other[k]) < 1e-12 if isinstance(other[k], float) else params[k] == other[k]
        for k in names
    )


def _describe(params: dict[str, Any]) -> str:
    searched = {
        **params.get("args", {}),
        **{k: v for k, v in params.items() if k not in (*_PARAMS, "args")},
    }
    more = "".join(
        f", {k} {v:.3g}" if isinstance(v, float) else f", {k} {v}" for k, v in searched.items()
    )
    return (
        f"weight decay {params['weight_decay']:.3g}, {params['scheduler']}, "
        f"warmup {params['warmup_ratio']:.3g}{more}"
    )
