from __future__ import annotations

from typing import TYPE_CHECKING

from hptune.config import register_phase
from hptune.keys import TrialStatus
from hptune.phases._base import Decision, SingleRunPhase, TrialOutcome
from hptune.seeds import summarize

if TYPE_CHECKING:
    from hptune.hparams import HParams

__all__ = ["BaselinePhase"]


@register_phase
class BaselinePhase(SingleRunPhase):
    """Phase 1: one trial at the preset configuration, the reference every later phase beats.

    It fixes nothing; its decision records the baseline's value and seed spread. It takes
    ``Phase``'s arguments.
    """

    name = "baseline"
    order = 1
    title = "1. Baseline (the presets)"
    what = "the presets' configuration"
    in_method = True

    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        finished = [o for o in outcomes if o.status == TrialStatus.OK]
        if not finished:
            status = outcomes[-1].status if outcomes else "missing"
            return Decision(
                self.name,
                {},
                None,
                "baseline_failed",
                f"the baseline run {status}; the learning-rate phase will show which rates train",
            )
        summary = summarize(list(finished[-1].seed_values.values()))
        return Decision(
            self.name,
            {},
            summary.mean,
            "baseline",
            f"baseline at the preset configuration: {_describe(summary.to_dict())}",
            summary.to_dict(),
        )


def _describe(summary: dict[str, object]) -> str:
    ci = summary.get("ci95")
    mean = summary["mean"]
    if isinstance(ci, list):
        return f"mean {mean:.4g} (95% interval {ci[0]:.4g} to {ci[1]:.4g})"
    return f"mean {mean:.4g} (one seed: no interval)"
