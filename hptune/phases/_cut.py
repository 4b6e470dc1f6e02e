"""One cut of a compute budget's fit: what a phase gives up so that the run fits.

Each phase states its own cuts (``Phase.edge_cut``, ``Phase.budget_cut``); ``hptune.budget``
makes them in turn until the plan fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Cut"]


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
        """The cut as stored (JSON).

        Returns:
            ``changes``, ``words`` and ``plan``.
        """
        return {"changes": dict(self.changes), "words": self.words, "plan": self.plan}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Cut:
        """A cut as `to_dict` stored it.

        Args:
            stored: What `to_dict` returned.

        Returns:
            The cut.
        """
        return cls(dict(stored["changes"]), stored["words"], stored["plan"])

    @classmethod
    def fewer_trials(cls, phase: str, before: int, step: int, fewest: int) -> Cut | None:
        """``step`` trials off a phase's ``n_trials``, down to ``fewest``.

        Args:
            phase: The phase's section under ``phases:``.
            before: Its trials so far.
            step: How many trials a cut takes off.
            fewest: The fewest trials a cut leaves.

        Returns:
            The cut, or None when ``before`` is at ``fewest`` already.
        """
        if before <= fewest:
            return None
        after = max(before - step, fewest)
        key = f"phases.{phase}.n_trials"
        return cls({key: after}, f"{key} {before} -> {after}")
