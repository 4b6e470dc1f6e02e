"""One seed's reports to its trial: each epoch's end (dashboard step, pruner, early stopping)
and each look within an epoch (``training.eval_steps``: the pruner only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune._trial_state import SeedProgress, report_seed_epoch
from hptune.hparams import HParams

if TYPE_CHECKING:
    import optuna

    from hptune.train import EpochMetrics

__all__ = ["ReportRules", "SeedReports"]


@dataclass(frozen=True)
class ReportRules:
    """What every seed of a phase reports by: its metric, early stopping's patience, and
    where progress events go."""

    metric: str
    patience: int | None
    emit: Callable[..., None]  # (trial, hp, **fields): a progress event


class SeedReports:
    """One seed's reports: each epoch's end (dashboard step, pruner, early stopping) and each
    look within an epoch (``training.eval_steps``: the pruner only)."""

    def __init__(
        self,
        rules: ReportRules,
        trial: optuna.Trial,
        hp: HParams,
        seed_index: int,
        state: SeedProgress,
    ) -> None:
        self.rules, self.trial, self.hp = rules, trial, hp
        self.seed_index, self.state = seed_index, state

    def __call__(self, seed: int, metrics: EpochMetrics) -> bool:
        rules, trial, state = self.rules, self.trial, self.state
        value = metrics.metric(rules.metric)
        rules.emit(
            trial,
            self.hp,
            seed=seed,
            seed_index=self.seed_index,
            event="epoch",
            racing=not state.reports,
            epoch=metrics.epoch,
            train_loss=metrics.train_loss,
            eval_loss=metrics.eval_loss,
            score=metrics.score,
        )
        step = state.report(trial, seed, self.seed_index, metrics.epoch, value)
        if state.reports and self._pruned(seed, metrics.epoch, step=step):
            return False
        return not state.should_stop(self.seed_index, rules.patience)

    def look(self, seed: int, epoch: int, value: float, looks_per_epoch: int) -> bool:
        """A look within ``epoch``: recorded for the pruner, which may stop the trial here."""
        trial = self.trial
        if keys.LOOKS_PER_EPOCH not in trial.user_attrs:
            trial.set_user_attr(keys.LOOKS_PER_EPOCH, looks_per_epoch)
        report_seed_epoch(trial, seed, value)
        if not self.state.reports:
            return True
        return not self._pruned(seed, epoch, look=True)

    def _pruned(self, seed: int, epoch: int, **where: Any) -> bool:
        if not self.trial.should_prune():
            return False
        self.state.pruned = True
        self.state.pruned_at = {"seed": seed, "epoch": epoch, **where}
        self.rules.emit(self.trial, self.hp, event="pruned", seed=seed, epoch=epoch)
        return True
