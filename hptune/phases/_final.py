from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.keys import TrialStatus
from hptune.phases._base import Decision, Phase, PhaseBudget, TrialOutcome
from hptune.seeds import summarize

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.hparams import HParams

__all__ = ["TestEvaluation"]


class TestEvaluation(Phase):
    """After the phases: the chosen configuration on every seed, measured once on the test split.

    Each seed's test value is taken at its best validation epoch. The result is reported
    apart and never feeds a decision; it is what the user can quote.

    Args:
        max_retries: How often a failed trial is queued again with the same parameters.
        notes: Why the phase was set up as it was; added to the decision's reason.

    Raises:
        ValueError: A negative ``max_retries``.
    """

    name = "final"
    evaluate_test = True

    @classmethod
    def planned(cls, config: TuneConfig, base: HParams, n_train: int) -> PhaseBudget:
        what = "the chosen configuration, measured on the test split"
        return PhaseBudget(1, (base.epochs, base.epochs), base.epochs, what)

    def n_trials(self) -> int:
        return 1

    def suggest(self, trial: optuna.Trial, base: HParams) -> HParams:
        return base

    def decide(self, outcomes: list[TrialOutcome], base: HParams, direction: str) -> Decision:
        ok = [o for o in outcomes if o.status == TrialStatus.OK]
        if not ok:
            return Decision(self.name, {}, None, "final_failed",
                            "the final configuration did not train to the end")  # fmt: skip
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
