"""The objective every phase shares: train a configuration on every seed, aggregate, report."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hptune.hparams import HParams
from hptune.phases import Phase, TrialOutcome
from hptune.seeds import summarize

if TYPE_CHECKING:
    import optuna

    from hptune.train import EpochMetrics, Runner, RunResult

__all__ = ["SeedObjective", "outcome_from_trial"]

ProgressCallback = Callable[[dict[str, Any]], None]


class SeedObjective:
    """An Optuna objective: the phase's configuration trained on each of the paired seeds.

    The trial reports the seed mean of the validation metric per epoch (for pruners), keeps
    every seed's curve and best value as user attributes with the mean, standard deviation
    and 95% interval, and returns the seed mean. A diverged seed ends the trial as pruned,
    marked ``status = diverged``: more seeds would not rescue that configuration.
    """

    def __init__(
        self,
        runner: Runner,
        phase: Phase,
        base: HParams,
        *,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.runner = runner
        self.phase = phase
        self.base = base
        self.progress = progress
        objective = runner.config.objective
        self.metric = objective.metric
        self.direction = objective.direction
        self.seeds = objective.seed_list

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        hp = self.phase.suggest(trial, self.base)
        if self.progress is not None:
            self.progress({"event": "trial_start", "phase": self.phase.name,
                           "trial": trial.number, "n_trials": self.phase.n_trials()})  # fmt: skip
        trial.set_user_attr("hparams", hp.to_dict())
        runs: list[RunResult] = []
        for index, seed in enumerate(self.seeds):
            self._emit(trial, hp, seed=seed, seed_index=index, event="seed_start")
            run = self.runner.train(hp, seed, on_epoch=self._epoch_callback(trial, hp, index))
            runs.append(run)
            if run.diverged:
                break
        trial.set_user_attr("runs", [r.to_dict() for r in runs])
        if runs[-1].diverged:
            trial.set_user_attr("status", "diverged")
            trial.set_user_attr("diverged", {"seed": runs[-1].seed, "at": runs[-1].diverged_at})
            raise optuna.TrialPruned(f"seed {runs[-1].seed} diverged at {runs[-1].diverged_at}")
        best = {r.seed: r.best_epoch(self.metric, self.direction) for r in runs}
        summary = summarize([best[r.seed].metric(self.metric) for r in runs])
        for epoch in range(1, min(len(r.epochs) for r in runs) + 1):
            values = [r.epochs[epoch - 1].metric(self.metric) for r in runs]
            trial.report(sum(values) / len(values), step=epoch)
        trial.set_user_attr("status", "ok")
        trial.set_user_attr("seed_values", {str(s): e.metric(self.metric) for s, e in best.items()})
        trial.set_user_attr("best_epochs", {str(s): e.epoch for s, e in best.items()})
        trial.set_user_attr("mean", summary.mean)
        trial.set_user_attr("std", summary.std)
        trial.set_user_attr(
            "ci95", None if summary.ci_low is None else [summary.ci_low, summary.ci_high]
        )
        trial.set_user_attr(
            "examples_per_second", sum(r.examples_per_second for r in runs) / len(runs)
        )
        trial.set_user_attr("tokens_per_second", sum(r.tokens_per_second for r in runs) / len(runs))
        return summary.mean

    def _epoch_callback(
        self, trial: optuna.Trial, hp: HParams, seed_index: int
    ) -> Callable[[int, EpochMetrics], None]:
        def on_epoch(seed: int, metrics: EpochMetrics) -> None:
            self._emit(
                trial,
                hp,
                seed=seed,
                seed_index=seed_index,
                event="epoch",
                epoch=metrics.epoch,
                train_loss=metrics.train_loss,
                eval_loss=metrics.eval_loss,
                bleu=metrics.bleu,
            )

        return on_epoch

    def _emit(self, trial: optuna.Trial, hp: HParams, **fields: Any) -> None:
        if self.progress is not None:
            self.progress(
                {"phase": self.phase.name, "trial": trial.number, "hparams": hp, **fields}
            )


def outcome_from_trial(trial: optuna.trial.FrozenTrial) -> TrialOutcome:
    """What a phase needs of a finished trial, read back from the storage."""
    seed_values = {int(s): float(v) for s, v in trial.user_attrs.get("seed_values", {}).items()}
    status = trial.user_attrs.get("status", "failed")
    if trial.state.name == "FAIL":
        status = "failed"
    return TrialOutcome(trial.number, dict(trial.params), seed_values, status)
