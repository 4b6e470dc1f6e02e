"""A trial's seeds as the objective follows them: each seed's best-so-far curve, for the
dashboard's steps, early stopping and pruning (seeds in turn, or side by side)."""

from __future__ import annotations

from typing import Any

__all__ = ["TrialState"]


class TrialState:
    """Each seed's best-so-far curve, for reports, early stopping and pruning."""

    def __init__(self, stride: int, direction: str, *, reports: bool = True) -> None:
        self.stride = stride
        self.reports = reports  # whether steps are reported to the pruner
        self.better = (lambda a, b: a < b) if direction == "minimize" else (lambda a, b: a > b)
        self.best_so_far: list[list[float]] = []
        self.pruned = False
        self.pruned_at: dict[str, Any] | None = None

    def record(self, seed_index: int, value: float) -> None:
        while len(self.best_so_far) <= seed_index:
            self.best_so_far.append([])
        curve = self.best_so_far[seed_index]
        curve.append(value if not curve or self.better(value, curve[-1]) else curve[-1])

    def has_reports(self, seed_indices: range) -> bool:
        """Whether any of these seeds has reported an epoch."""
        return any(i < len(self.best_so_far) and self.best_so_far[i] for i in seed_indices)

    def running_mean(self, seed_index: int, epoch: int) -> float:
        # Seeds that stopped early keep their best value for the later epochs.
        values = [c[min(epoch, len(c)) - 1] for c in self.best_so_far[: seed_index + 1] if c]
        return sum(values) / len(values)

    def should_stop(self, seed_index: int, patience: int | None) -> bool:
        """Whether the seed's metric has not improved for ``patience`` epochs."""
        curve = self.best_so_far[seed_index]
        if patience is None or len(curve) <= patience:
            return False
        return curve[-1] == curve[-1 - patience]
