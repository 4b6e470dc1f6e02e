"""The objective every phase shares: train a configuration on every seed, aggregate, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune._lazy import optuna
from hptune._seed_reports import ReportRules, SeedReports
from hptune._trial_state import SeedProgress, report_seed_epoch
from hptune.exceptions import BudgetSpent
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.search import record_out_of_memory
from hptune.seeds import summarize
from hptune.stored import trial_id
from hptune.train import RunResult
from hptune.train.checkpoints import checkpoint_path, remove_checkpoints, run_name
from hptune.train.memory import is_out_of_memory
from hptune.train.together import Member, seeds_per_step, train_group, train_together

if TYPE_CHECKING:
    from hptune.ledger import BudgetLedger
    from hptune.phases import Phase
    from hptune.train import EpochMetrics, RunnerBase

__all__ = ["ProgressCallback", "ReuseLookup", "SeedObjective", "TrialOutOfMemory"]

ProgressCallback = Callable[[dict[str, Any]], None]
#: A claimed trial about to train in a group: its configuration, seeds and epoch records.
_Started = tuple["optuna.Trial", HParams, list[int], SeedProgress]
#: Finds an earlier finished trial of the same configuration on the same seeds: (where, its
#: per-seed runs).
ReuseLookup = Callable[[HParams, list[int]], "tuple[str, list[dict[str, Any]]] | None"]


class TrialOutOfMemory(Exception):
    """A trial ran out of memory; the pipeline records it and goes on with the next trial."""


class SeedObjective:
    """An Optuna objective: the phase's configuration trained on each of the paired seeds.

    While training, it records every seed's value after every epoch
    (``hptune.search.report_seed_epoch``, for the paired pruner) and reports with
    ``trial.report`` at step ``seed_index x max_epochs + epoch`` the mean, over the seeds
    trained so far, of each seed's best value up to that epoch (``hptune._trial_state``: the
    curve optuna-dashboard shows, and the one Optuna's own pruners read). A racing trial
    (extra seeds for a configuration not yet told apart) trains only its seeds and is never
    pruned. Each seed stops early once the metric has not
    improved for ``training.early_stopping_patience`` epochs; its best epoch is its value.

    The trial keeps every seed's curve and best value as user attributes with the mean,
    standard deviation, 95% interval and throughput, and returns the seed mean. A diverged
    seed ends the trial as pruned (``status = diverged``); a pruned one is ``status =
    pruned``; running out of memory is recorded (``status = oom``) and raised as
    `TrialOutOfMemory`. With a ``budget`` ledger, a trial the rest of the budget
    cannot finish is not started: it ends pruned with ``status = over_budget``.
    """

    def __init__(
        self,
        runner: RunnerBase,
        phase: Phase,
        base: HParams,
        *,
        progress: ProgressCallback | None = None,
        reuse: ReuseLookup | None = None,
        budget: BudgetLedger | None = None,
    ) -> None:
        self.runner = runner
        self.budget = budget
        self.phase = phase
        self.base = base
        self.progress = progress
        # Training is deterministic given the configuration and the seed, so a configuration
        # an earlier phase finished is read back instead of trained again.
        self.reuse = None if phase.evaluate_test else reuse
        objective = runner.config.objective
        self.metric = objective.metric_name
        self.direction = objective.goal
        self.seeds = objective.seed_list
        self.patience = runner.config.training.early_stopping_patience

    def __call__(self, trial: optuna.Trial) -> float:
        hp, seeds, state = self._start(trial)
        found = self.reuse(hp, seeds) if self.reuse is not None else None
        if found is not None:
            return self._replay(trial, hp, state, *found)
        if self.budget is not None:  # a trial starts only when the budget can finish it
            self._keep_to_budget(trial, hp, len(seeds))
        runs = self._train_seeds(trial, hp, seeds, state)
        return self._record(trial, hp, runs, state)

    def train_trials(self, trials: list[optuna.Trial]) -> list[float | Exception]:
        """Train claimed trials in one stack (``training.candidates_together``), each still
        its own trial: read back, refused by the budget, recorded, pruned on its own.

        Args:
            trials: The claimed trials, their parameters sampled (`claim_group`'s group).

        Returns:
            Per trial, its value, or the ``optuna.TrialPruned`` or `TrialOutOfMemory` that
            ended it.
        """
        outcomes: dict[int, float | Exception] = {}
        started: list[_Started] = []
        for trial in trials:
            hp, seeds, state = self._start(trial)
            try:
                found = self.reuse(hp, seeds) if self.reuse is not None else None
                if found is not None:
                    outcomes[trial.number] = self._replay(trial, hp, state, *found)
                    continue
                if self.budget is not None:  # the whole group reserved before it starts
                    self._keep_to_budget(trial, hp, len(seeds))
            except optuna.TrialPruned as exc:
                outcomes[trial.number] = exc
                continue
            started.append((trial, hp, seeds, state))
        for (trial, hp, _, state), runs in zip(started, self._train_stack(started), strict=True):
            if isinstance(runs, Exception):
                outcomes[trial.number] = runs
                continue
            try:
                outcomes[trial.number] = self._record(trial, hp, runs, state)
            except optuna.TrialPruned as exc:
                outcomes[trial.number] = exc
        return [outcomes[t.number] for t in trials]

    def _train_stack(self, started: list[_Started]) -> list[list[RunResult] | Exception]:
        """The trials' seeds as one stack; alone, each in turn, when one trial is left or
        the stack ran out of memory before any report (one at a time may fit)."""
        if len(started) > 1:
            members = []
            for trial, hp, seeds, state in started:
                trial.set_user_attr(keys.SEEDS_TOGETHER, True)
                trial.set_user_attr(keys.GROUP, [t.number for t, *_ in started])
                for index, seed in enumerate(seeds):
                    self._emit(trial, hp, seed=seed, seed_index=index, event="seed_start")
                callbacks = [self._epoch_callback(trial, hp, i, state) for i in range(len(seeds))]
                stopped = lambda state=state: state.pruned  # noqa: E731
                members.append(Member(hp, seeds, callbacks, self._run_name(trial), stopped))
            try:
                grouped = train_group(self.runner, members, evaluate_test=self.phase.evaluate_test)
            except Exception as exc:
                reported = any(s.has_reports(range(len(seeds))) for _, _, seeds, s in started)
                if not is_out_of_memory(exc) or reported:
                    raise
            else:
                for (trial, *_), runs in zip(started, grouped, strict=True):
                    trial.set_user_attr(keys.RUNS, [r.to_dict() for r in runs])
                return list(grouped)
        alone: list[list[RunResult] | Exception] = []
        for trial, hp, seeds, state in started:
            try:
                alone.append(self._train_seeds(trial, hp, seeds, state))
            except TrialOutOfMemory as exc:
                alone.append(exc)
        return alone

    def _start(self, trial: optuna.Trial) -> tuple[HParams, list[int], SeedProgress]:
        """The trial's configuration (a remedy applied), its seeds and its epoch records."""
        hp = self.phase.suggest(trial, self.base)
        remedy = trial.user_attrs.get(keys.REMEDY)
        if remedy:  # a diverged trial run again with the guide's remedy
            hp = hp.replace(**remedy)
        self._emit(trial, hp, event="trial_start", n_trials=self.phase.n_trials())
        trial.set_user_attr(keys.HPARAMS, hp.to_dict())
        # A racing trial trains only the extra seeds it was queued with, and is never pruned
        # (its steps would not line up with the other trials').
        racing = trial.user_attrs.get(keys.RACE_SEEDS)
        seeds = [int(s) for s in racing] if racing else self.seeds
        return hp, seeds, SeedProgress(self.max_epochs(hp), self.direction, reports=not racing)

    def _train_seeds(
        self, trial: optuna.Trial, hp: HParams, seeds: list[int], state: SeedProgress
    ) -> list[RunResult]:
        """Train ``hp`` on each seed in turn (or K at a time, ``training.seeds_together``),
        until one diverges or the trial is pruned.

        Raises:
            TrialOutOfMemory: A seed ran out of memory (recorded on the trial).
        """
        runs: list[RunResult] = []
        k = seeds_per_step(self.runner, hp, seeds)
        try:
            for first in range(0, len(seeds), k):
                runs += self._train_group(trial, hp, seeds, first, seeds[first : first + k], state)
                if any(r.diverged for r in runs) or state.pruned:
                    break
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            trial.set_user_attr(keys.RUNS, [r.to_dict() for r in runs])
            self._remove_checkpoints(trial)
            record_out_of_memory(trial, hp.batch_size, str(exc))
            self._emit(trial, hp, event="oom", message=str(exc)[:200])
            raise TrialOutOfMemory(f"out of memory at batch size {hp.batch_size}") from exc
        trial.set_user_attr(keys.RUNS, [r.to_dict() for r in runs])
        return runs

    def _train_group(
        self,
        trial: optuna.Trial,
        hp: HParams,
        seeds: list[int],
        first: int,
        group: list[int],
        state: SeedProgress,
    ) -> list[RunResult]:
        """Train the seeds of ``group`` (from index ``first`` of ``seeds``): together in one
        loop, each seed still measured and reported as its own run; or in turn. Seeds that
        run out of memory together before any report train in turn instead."""
        indices = range(first, first + len(group))
        for index in indices:
            self._emit(trial, hp, seed=seeds[index], seed_index=index, event="seed_start")
        if len(group) > 1:
            trial.set_user_attr(keys.SEEDS_TOGETHER, True)
            try:
                callbacks = [self._epoch_callback(trial, hp, i, state) for i in indices]
                return train_together(
                    self.runner,
                    hp,
                    group,
                    callbacks,
                    evaluate_test=self.phase.evaluate_test,
                    run_name=self._run_name(trial),
                    stopped=lambda: state.pruned,
                )
            except Exception as exc:
                # The memory model's K was too many: one at a time may fit (this batch is no
                # out-of-memory boundary). Once a seed has reported, its curve cannot restart.
                if not is_out_of_memory(exc) or state.has_reports(indices):
                    raise
                self._emit(trial, hp, event="together_oom", message=str(exc)[:200])
        runs: list[RunResult] = []
        for index in indices:
            runs.append(self._train_one(trial, hp, seeds[index], index, state))
            if runs[-1].diverged or state.pruned:
                break
        return runs

    def _train_one(
        self, trial: optuna.Trial, hp: HParams, seed: int, index: int, state: SeedProgress
    ) -> RunResult:
        """One seed's run (going on from a failed trial's checkpoints when this retries it)."""
        retry_of = trial.storage.get_trial_system_attrs(trial_id(trial)).get(keys.RETRY_OF)
        return self.runner.train(
            hp,
            seed,
            on_epoch=self._epoch_callback(trial, hp, index, state),
            evaluate_test=self.phase.evaluate_test,
            run_name=self._run_name(trial),
            resume_from=self._checkpoints_of(retry_of, seed),
        )

    def _record(
        self, trial: optuna.Trial, hp: HParams, runs: list[RunResult], state: SeedProgress
    ) -> float:
        """The trial's outcome: diverged or pruned (raised as pruned), else its seed mean.

        Raises:
            optuna.TrialPruned: A seed diverged, or the pruner stopped the trial.
        """
        # the seed that diverged (seeds trained together stop with it), else the last
        last = next((r for r in runs if r.diverged), runs[-1])
        if last.diverged or state.pruned:
            self._remove_checkpoints(trial)  # never needed again: keep the disk bounded
        if last.diverged:
            self._emit(trial, hp, event="diverged", seed=last.seed, at=last.diverged_at)
            keys.set_status(trial, TrialStatus.DIVERGED)
            trial.set_user_attr(keys.DIVERGED, {"seed": last.seed, "at": last.diverged_at})
            raise optuna.TrialPruned(f"seed {last.seed} diverged at {last.diverged_at}")
        if state.pruned:
            keys.set_status(trial, TrialStatus.PRUNED)
            trial.set_user_attr(keys.PRUNED_AT, state.pruned_at)
            raise optuna.TrialPruned(f"pruned at {state.pruned_at}")
        return self._finish(trial, runs)

    def _replay(
        self,
        trial: optuna.Trial,
        hp: HParams,
        state: SeedProgress,
        source: str,
        stored_runs: list[dict[str, Any]],
    ) -> float:
        """The trial read back from ``source``'s runs, reported as if it had trained them."""
        runs = [RunResult.from_dict(r) for r in stored_runs]
        looked = next((len(m.looks) for r in runs for m in r.epochs if m.looks), 0)
        if looked:  # as the trial that trained them recorded it, for the pruner's positions
            trial.set_user_attr(keys.LOOKS_PER_EPOCH, looked + 1)
        for index, run in enumerate(runs):
            for metrics in run.epochs:
                for value in metrics.looks:
                    report_seed_epoch(trial, run.seed, value)
                state.report(trial, run.seed, index, metrics.epoch, metrics.metric(self.metric))
        trial.set_user_attr(keys.RUNS, stored_runs)
        trial.set_user_attr(keys.REUSED_FROM, source)
        self._emit(trial, hp, event="reused", source=source)
        return self._finish(trial, runs)

    def _run_name(self, trial: optuna.Trial | int) -> str:
        number = trial if isinstance(trial, int) else trial.number
        return run_name(self.runner.config.study_name(self.phase.name), number)

    def _checkpoints_of(self, trial_number: int | None, seed: int) -> Path | None:
        """Where a failed trial (this one retries it) kept its epoch checkpoints for ``seed``:
        the retry goes on from the last one instead of training those epochs again."""
        if trial_number is None or not self.runner.config.training.checkpoints:
            return None
        name = self._run_name(int(trial_number))
        return checkpoint_path(self.runner.config.output_dir, name, seed)

    def _remove_checkpoints(self, trial: optuna.Trial) -> None:
        remove_checkpoints(checkpoint_path(self.runner.config.output_dir, self._run_name(trial)))

    def max_epochs(self, hp: HParams) -> int:
        return max(self.phase.max_epochs(self.base), hp.epochs)

    def _keep_to_budget(self, trial: optuna.Trial, hp: HParams, n_seeds: int) -> None:
        """Refuse a trial the rest of the budget cannot finish: the phase decides on what it
        has (the trial ends pruned, ``over_budget``), or, with nothing, the run stops there.

        Raises:
            optuna.TrialPruned: Refused; the phase has a finished trial to decide on.
            BudgetSpent: Refused, and the phase has nothing yet (the trial ends FAIL,
                ``over_budget``, and runs when the command is run again with more budget).
        """
        assert self.budget is not None
        why = self.budget.refusal(
            n_seeds * hp.epochs, exclude=trial_id(trial), running_cost=self._running_cost
        )
        if why is None:
            return
        keys.set_status(trial, TrialStatus.OVER_BUDGET)
        trial.set_user_attr(keys.OVER_BUDGET, why)
        self._emit(trial, hp, event="over_budget", why=why)
        finished = [
            t
            for t in trial.study.get_trials(deepcopy=False)
            if keys.stored_status(t) == TrialStatus.OK
        ]
        if finished:
            raise optuna.TrialPruned(f"not started, over the compute budget: {why}")
        raise BudgetSpent(
            f"the compute budget cannot finish a trial of the {self.phase.name} phase: {why}. "
            "The phases decided so far are kept (hptune status, hptune report); raise "
            "budget.seed_epochs or budget.gpu_hours and run the same command to go on"
        )

    def _running_cost(self, trial: optuna.trial.FrozenTrial) -> int:
        """Seed-epochs a trial running elsewhere may still take (its whole cost, at most)."""
        seeds = trial.user_attrs.get(keys.RACE_SEEDS) or self.seeds
        return len(seeds) * int(trial.user_attrs.get(keys.HPARAMS, {}).get("epochs", 0))

    def _finish(self, trial: optuna.Trial, runs: list[RunResult]) -> float:
        best = {r.seed: r.best_epoch(self.metric, self.direction) for r in runs}
        summary = summarize([best[r.seed].metric(self.metric) for r in runs])
        keys.set_status(trial, TrialStatus.OK)
        trial.set_user_attr(
            keys.SEED_VALUES, {str(s): e.metric(self.metric) for s, e in best.items()}
        )
        trial.set_user_attr(keys.BEST_EPOCHS, {str(s): e.epoch for s, e in best.items()})
        trial.set_user_attr(keys.MEAN, summary.mean)
        trial.set_user_attr(keys.STD, summary.std)
        trial.set_user_attr(
            keys.CI95, None if summary.ci_low is None else [summary.ci_low, summary.ci_high]
        )
        # per GPU, as the ledger and budget.examples_per_second count it
        per_gpu = [
            (r.examples_per_second / r.processes, r.tokens_per_second / r.processes) for r in runs
        ]
        trial.set_user_attr(keys.EXAMPLES_PER_SECOND, sum(e for e, _ in per_gpu) / len(runs))
        trial.set_user_attr(keys.TOKENS_PER_SECOND, sum(t for _, t in per_gpu) / len(runs))
        if self.phase.evaluate_test:
            test = {str(s): _test_value(e, self.metric) for s, e in best.items()}
            trial.set_user_attr(keys.TEST_VALUES, {s: v for s, v in test.items() if v is not None})
        return summary.mean

    def _epoch_callback(
        self, trial: optuna.Trial, hp: HParams, seed_index: int, state: SeedProgress
    ) -> SeedReports:
        rules = ReportRules(self.metric, self.patience, self._emit)
        return SeedReports(rules, trial, hp, seed_index, state)

    def _emit(self, trial: optuna.Trial, hp: HParams, **fields: Any) -> None:
        if self.progress is not None:
            self.progress(
                {"phase": self.phase.name, "trial": trial.number, "hparams": hp, **fields}
            )


def _test_value(metrics: EpochMetrics, metric: str) -> float | None:
    return metrics.test_loss if metric == "eval_loss" else metrics.test_score
