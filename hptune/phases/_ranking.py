"""Ranking a phase's trials: the best by seed mean, and every other judged against it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hptune.keys import TrialStatus
from hptune.phases._base import TrialOutcome
from hptune.seeds import (
    Comparison,
    Margin,
    Verdict,
    compare_to_reference,
    resolve_margin,
    seed_noise,
)

__all__ = [
    "MARGIN_SHARE_OF_NOISE",
    "MAX_CONTENDERS",
    "NoiseRanking",
    "racing_trials_at_most",
    "rank_within_noise",
]


@dataclass(frozen=True)
class NoiseRanking:
    """The best trial and every other trial's verdict against it (see ``compare_to_reference``).

    Args:
        best: The trial with the best seed mean.
        ranked: Every ranked trial, ``best`` included.
        comparisons: By trial number, its comparison with the best, oriented so that worse
            is positive.
        margin: The equivalence margin used (metric units); None when there was none.
        noise: The typical seed standard deviation of one configuration; None with one seed.
        asked: The margin as configured (``"2%"``: a share of the best's mean); None: the
            default from the noise.
    """

    best: TrialOutcome
    ranked: list[TrialOutcome]
    comparisons: dict[int, Comparison]  # trial number -> (trial - best), oriented "worse > 0"
    margin: float | None
    noise: float | None
    asked: Margin | None = None

    def having(self, *verdicts: Verdict) -> list[TrialOutcome]:
        """The trials other than the best whose verdict is one of ``verdicts``.

        Args:
            verdicts: Verdicts to select.

        Returns:
            Those trials, in ranking order.
        """
        return [o for o in self.ranked if o is not self.best
                and self.comparisons[o.number].verdict in verdicts]  # fmt: skip

    @property
    def equivalent(self) -> list[TrialOutcome]:
        """The best and the trials shown equivalent to it."""
        return [self.best, *self.having(Verdict.EQUIVALENT)]

    @property
    def undecided(self) -> list[TrialOutcome]:
        """The trials not yet told apart from the best (more seeds would tell)."""
        return self.having(Verdict.UNDECIDED, Verdict.BETTER)

    @property
    def n_seeds(self) -> int:
        """The best trial's number of seeds."""
        return len(self.best.seed_values)

    def describe(self, number: int) -> str:
        """A trial's comparison with the best, in words with its numbers.

        Args:
            number: A ranked trial's number (not the best's).

        Returns:
            E.g. ``worse by 0.154 (95% interval 0.101 to 0.207, 3 seeds)``.
        """
        c = self.comparisons[number]
        if c.ci_low is None:
            return f"worse by {c.mean:.4g} on {c.n} seed(s), without a noise estimate"
        return (
            f"{'worse' if c.mean >= 0 else 'better'} by {abs(c.mean):.4g} (95% interval "
            f"{c.ci_low:.4g} to {c.ci_high:.4g}, {c.n} paired seeds)"
        )

    def figures(self) -> dict[str, float | None]:
        """The margin and the seed noise, for a decision's summary.

        Returns:
            ``equivalence_margin`` and ``seed_noise`` (None where there is none).
        """
        return {"equivalence_margin": self.margin, "seed_noise": self.noise}

    def evidence(self, label: Callable[[TrialOutcome], str], limit: int = 3) -> str:
        """The margin and the closest trials' comparisons with the best, in words.

        Args:
            label: A trial's name in the sentence (e.g. its learning rate).
            limit: The most trials named (the closest to the best first).

        Returns:
            E.g. ``equivalence margin 0.0203 (half the seed std 0.0406); 0.005: undecided,
            worse by 0.05 (95% interval -0.02 to 0.12, 3 paired seeds)``.
        """
        if self.margin is None:
            head = "no equivalence margin"
        elif isinstance(self.asked, str):
            head = f"equivalence margin {self.margin:.4g} ({self.asked.strip()} of the best mean)"
        elif self.noise is not None and self.margin == MARGIN_SHARE_OF_NOISE * self.noise:
            head = f"equivalence margin {self.margin:.4g} (half the seed std {self.noise:.4g})"
        else:
            head = f"equivalence margin {self.margin:.4g}"
        others = sorted(self.comparisons.items(), key=lambda item: abs(item[1].mean))
        by_number = {o.number: o for o in self.ranked}
        parts = [
            f"{label(by_number[number])}: {c.verdict}, {self.describe(number)}"
            for number, c in others[:limit]
        ]
        return "; ".join([head, *parts])


#: The default equivalence margin, as a share of the seed noise (``seed_noise``).
MARGIN_SHARE_OF_NOISE = 0.5


def rank_within_noise(
    outcomes: list[TrialOutcome], direction: str, margin: Margin | None = None
) -> NoiseRanking:
    """Find the best trial by seed mean and judge every other against it, seed by seed.

    Each other trial is ``worse`` than the best beyond seed noise, ``equivalent`` to it
    (the difference is shown to be within ``margin``), or ``undecided`` (not told apart);
    see ``hptune.seeds.compare_to_reference``. The noise is pooled over the undecided
    trials for more degrees of freedom. With a single seed there is no noise estimate and
    every other trial is undecided.

    Args:
        outcomes: Finished trials; only those ``ok`` with seed values are ranked.
        direction: ``minimize`` or ``maximize``.
        margin: The largest difference that does not matter: in the metric's units, or a
            share of the best mean (``"2%"``); None takes half the typical seed standard
            deviation (``MARGIN_SHARE_OF_NOISE``).

    Returns:
        The best trial and every other trial's comparison with it.

    Raises:
        ValueError: No trial is ``ok`` with seed values, or one shares no seed with the
            best.
    """
    ok = [o for o in outcomes if o.status == TrialStatus.OK and o.seed_values]
    if not ok:
        raise ValueError("no finished trial to rank")
    sign = 1.0 if direction == "minimize" else -1.0
    best = min(ok, key=lambda o: sign * (o.mean or 0.0))
    noise = seed_noise({o.number: o.seed_values for o in ok})
    absolute = resolve_margin(margin, best.mean or 0.0)
    if absolute is None and noise is not None:
        absolute = MARGIN_SHARE_OF_NOISE * noise
    reference = {s: sign * v for s, v in best.seed_values.items()}
    others = {
        o.number: {s: sign * v for s, v in o.seed_values.items()} for o in ok if o is not best
    }
    comparisons = compare_to_reference(others, reference, margin=absolute)
    ranked = sorted(ok, key=lambda o: sign * (o.mean or 0.0))
    return NoiseRanking(best, ranked, comparisons, absolute, noise, margin)


#: Racing: the most contenders given another seed at once, beside the best (closest first).
MAX_CONTENDERS = 3


def racing_trials_at_most(racing_seeds: int, n_candidates: int) -> int:
    """The most racing trials (one seed each) a phase of ``n_candidates`` configurations runs.

    Args:
        racing_seeds: The extra seeds racing may add (``objective.racing_seeds``).
        n_candidates: The configurations the phase compares.

    Returns:
        Extra seed runs at most: the best and up to ``MAX_CONTENDERS`` contenders, once
        per extra seed.
    """
    if n_candidates < 2:
        return 0
    return min(n_candidates, MAX_CONTENDERS + 1) * racing_seeds
