from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.config import register_phase
from hptune.keys import TrialStatus
from hptune.phases._base import Decision, SingleRunPhase, TrialOutcome
from hptune.seeds import summarize

if TYPE_CHECKING:
    from hptune.hparams import HParams

__all__ = ["TestEvaluation"]


@register_phase
class TestEvaluation(SingleRunPhase):
    """After the phases: the chosen configuration on every seed, measured once on the test split.

    Each seed's test value is taken at its best validation epoch. The result is reported
    apart and never feeds a decision; it is what the user can quote. It takes ``Phase``'s
    arguments.
    """

    name = "final"
    order = 100
    title = "Final evaluation on the test split"
    what = "the chosen configuration, measured on the test split"
    listed = False
    evaluate_test = True

    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        ok = [o for o in outcomes if o.status == TrialStatus.OK]
        if not ok:
            return Decision(
                self.name,
                {},
                None,
                "final_failed",
                "the final configuration did not train to the end",
            )
        final = ok[-1]
        validation = summarize(list(final.seed_values.values())).to_dict()
        summary: dict[str, Any] = {"validation": validation, "hparams": base.to_dict()}
        reason = f"validation {_interval(validation)}"
        if final.test_values:
            test = summarize(list(final.test_values.values())).to_dict()
            summary["test"] = {
                **test,
                "seed_values": {str(s): v for s, v in final.test_values.items()},
            }
            reason += f"; test (reported only, never used to decide) {_interval(test)}"
        return Decision(self.name, {}, final.mean, "final", reason, summary)


def _interval(summary: dict[str, Any]) -> str:
    ci = summary.get("ci95")
    text = f"mean {summary['mean']:.4g}"
    if isinstance(ci, list):
        text += f" (95% interval {ci[0]:.4g} to {ci[1]:.4g})"
    return text
