"""The divergence watch: stops a run whose step loss is non-finite or explodes."""

from __future__ import annotations

import math


class DivergenceWatch:
    """Stops a run at once when its loss is non-finite or explodes past its start.

    The start is the validation loss before training when given, else the mean of the first
    ``warmup`` step losses; a moving average (factor 0.9) of the step loss above ``factor``
    times the start is an explosion: a healthy fine-tuning loss falls from where it starts,
    it does not triple.
    """

    def __init__(
        self, *, start: float | None = None, factor: float = 3.0, warmup: int = 10
    ) -> None:
        self.factor = factor
        self.warmup = warmup
        self.start = start if start is not None and math.isfinite(start) else None
        self.first: list[float] = []
        self.average: float | None = None

    def update(self, loss: float) -> str | None:
        """Record a step's loss; return why the run diverged, or None."""
        if not math.isfinite(loss):
            return f"loss {loss}"
        self.average = loss if self.average is None else 0.9 * self.average + 0.1 * loss
        if len(self.first) < self.warmup:
            self.first.append(loss)
            if self.start is None:
                return None
        start = self.start if self.start is not None else sum(self.first) / len(self.first)
        if start > 0 and self.average > self.factor * start:
            return (
                f"loss exploded: average {self.average:.4g}, {self.factor:g}x its start {start:.4g}"
            )
        return None
