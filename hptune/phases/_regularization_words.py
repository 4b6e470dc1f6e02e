"""The regularization phase's decision in words: a trial with the rate (and count) it won
at, each candidate's best rate, and the branch of the rule that applied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hptune.phases._local_rates import factor_words
from hptune.phases._local_rates import rates_won as local_rates_won
from hptune.phases._regularization_space import describe
from hptune.seeds import Verdict

if TYPE_CHECKING:
    from hptune.hparams import HParams
    from hptune.phases._outcome import TrialOutcome
    from hptune.phases._ranking import NoiseRanking

__all__ = ["at_rate", "case_against_incoming", "rates_won"]


def at_rate(params: dict[str, Any], base: HParams) -> str:
    """A trial in words with the rate it trained at, e.g. ``..., at rate 0.005 (x0.5)``, and
    its epoch count where it is not the incoming one."""
    count = params.get("epochs", base.epochs)
    words = describe({k: v for k, v in params.items() if k != "epochs"})
    at = f" over {count} epochs" if count != base.epochs else ""
    return f"{words}{at} at {factor_words(params['learning_rate'], base.learning_rate)}"


def rates_won(ranking: NoiseRanking, names: tuple[str, ...], base: HParams) -> list[dict[str, Any]]:
    """Each candidate's best rate (and count) among those it finished at, best candidate
    first (`hptune.phases._local_rates.rates_won`)."""
    return local_rates_won(ranking, lambda o: describe({k: o.params[k] for k in names}), base)


def case_against_incoming(ranking: NoiseRanking, reference: TrialOutcome | None) -> tuple[str, str]:
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
