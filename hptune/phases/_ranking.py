"""Ranking a phase's trials: one family-wise rule over the seed model (``hptune.seed_model``).

The trials' seed values are fitted as configuration + seed + noise; the best is the lowest
configuration effect (its mean on the seeds' common scale), and every other is judged
against it at once: "worse" at Tukey's honestly significant difference (at most 5% chance
per phase of calling a configuration equal to the best worse), "equivalent" by two one-sided
tests within the margin, else "undecided". Configurations found worse leave and the rest are
judged again (``rank_with_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hptune.keys import TrialStatus
from hptune.phases._outcome import TrialOutcome
from hptune.seed_model import (
    ModelComparison,
    SeedModel,
    fit_seed_model,
    rank_with_model,
    seeds_for_equivalence,
)
from hptune.seeds import Margin, Verdict, resolve_margin, seed_noise

__all__ = [
    "NoiseRanking",
    "racing_trials_at_most",
    "rank_within_noise",
]


@dataclass(frozen=True)
class NoiseRanking:
    """The best trial and every other trial's verdict against it (``hptune.seed_model``).

    Args:
        best: The trial with the best configuration effect (its seed mean when every trial
            has the same seeds).
        ranked: Every ranked trial, best first.
        comparisons: By trial number, its comparison with the best, oriented so that worse
            is positive.
        margin: The equivalence margin used (metric units); None when there was none.
        noise: The typical seed standard deviation of one configuration; None with one seed.
        asked: The margin as configured (``"2%"``: a share of the best's mean); None: the
            default from the noise.
        model: The seed model of the trials still in question; None with one trial.
        seeds_needed: The seeds per configuration at which two equal configurations are
            shown equivalent about half the time; None without a noise estimate.
    """

    best: TrialOutcome
    ranked: list[TrialOutcome]
    comparisons: dict[int, ModelComparison]  # trial number -> (trial - best), "worse > 0"
    margin: float | None
    noise: float | None
    asked: Margin | None = None
    model: SeedModel | None = None
    seeds_needed: int | None = None

    def having(self, *verdicts: Verdict) -> list[TrialOutcome]:
        """The trials other than the best whose verdict is one of ``verdicts``.

        Args:
            verdicts: Verdicts to select.

        Returns:
            Those trials, in ranking order.
        """
        return [
            o
            for o in self.ranked
            if o is not self.best and self.comparisons[o.number].verdict in verdicts
        ]

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

    @property
    def detectable(self) -> float | None:
        """The smallest difference from the best that the closest trial's seeds find worse
        80% of the time (what "undecided" leaves open); None without a noise estimate."""
        found = [c.detectable for c in self.comparisons.values() if c.detectable is not None]
        return min(found) if found else None

    def describe(self, number: int) -> str:
        """A trial's comparison with the best, in words with its numbers.

        Args:
            number: A ranked trial's number (not the best's).

        Returns:
            E.g. ``worse by 0.154 (family-wise 95% interval 0.101 to 0.207, 3 seeds)``.
        """
        c = self.comparisons[number]
        if c.ci_low is None or c.ci_high is None:
            return f"worse by {c.mean:.4g} on {c.n} seed(s), without a noise estimate"
        return (
            f"{'worse' if c.mean >= 0 else 'better'} by {abs(c.mean):.4g} (family-wise 95% "
            f"interval {c.ci_low:.4g} to {c.ci_high:.4g}, {c.n} seeds)"
        )

    def figures(self) -> dict[str, float | int | None]:
        """The margin, the seed noise, and what these seeds can tell, for a decision's summary.

        Returns:
            ``equivalence_margin``, ``seed_noise``, ``detectable_difference`` and
            ``seeds_for_equivalence`` (None where there is none).
        """
        return {
            "equivalence_margin": self.margin,
            "seed_noise": self.noise,
            "detectable_difference": self.detectable,
            "seeds_for_equivalence": self.seeds_needed,
        }

    def evidence(self, label: Callable[[TrialOutcome], str], limit: int = 3) -> str:
        """The margin, what the seeds can tell, and the closest trials' comparisons.

        Args:
            label: A trial's name in the sentence (e.g. its learning rate).
            limit: The most trials named (the closest to the best first).

        Returns:
            E.g. ``equivalence margin 0.0406 (the seed std); differences under 0.09 are
            not told at 3 seeds, equivalence needs about 8; 0.005: undecided, worse by
            0.05 (family-wise 95% interval -0.02 to 0.12, 3 seeds)``.
        """
        if self.margin is None:
            head = "no equivalence margin"
        elif isinstance(self.asked, str):
            head = f"equivalence margin {self.margin:.4g} ({self.asked.strip()} of the best mean)"
        elif self.asked is None:
            head = f"equivalence margin {self.margin:.4g} (default, from the seed noise)"
        else:
            head = f"equivalence margin {self.margin:.4g}"
        heads = [head]
        if self.detectable is not None:
            tell = f"differences under {self.detectable:.3g} are not told at {self.n_seeds} seeds"
            if self.seeds_needed is not None and self.seeds_needed > self.n_seeds:
                tell += f", equivalence needs about {self.seeds_needed}"
            heads.append(tell)
        others = sorted(self.comparisons.items(), key=lambda item: abs(item[1].mean))
        by_number = {o.number: o for o in self.ranked}
        parts = [
            f"{label(by_number[number])}: {c.verdict}, {self.describe(number)}"
            for number, c in others[:limit]
        ]
        return "; ".join([*heads, *parts])


def rank_within_noise(
    outcomes: list[TrialOutcome], direction: str, margin: Margin | None = None
) -> NoiseRanking:
    """Find the best trial and judge every other against it, as one family.

    The trials' seed values are fitted as configuration + seed + noise
    (``hptune.seed_model.rank_with_model``): trials with different seed sets (racing) are
    still compared on common seeds, "worse" claims hold at 5% for the phase as a whole, and
    "equivalent" needs the difference shown within ``margin``. With a single seed there is
    no noise estimate and every other trial is undecided.

    Args:
        outcomes: Finished trials; only those ``ok`` with seed values are ranked.
        direction: ``minimize`` or ``maximize``.
        margin: The largest difference that does not matter: in the metric's units, or a
            share of the best mean (``"2%"``); None takes the default from the seed noise
            (``hptune.seed_model.default_margin``: the paired noise of one seed, at most the
            typical seed standard deviation).

    Returns:
        The best trial and every other trial's comparison with it.

    Raises:
        ValueError: No trial is ``ok`` with seed values, a seed value is not finite, or
            trials share no seed with the others (they cannot be paired).
    """
    ok = [o for o in outcomes if o.status == TrialStatus.OK and o.seed_values]
    if not ok:
        raise ValueError("no finished trial to rank")
    sign = 1.0 if direction == "minimize" else -1.0
    noise = seed_noise({o.number: o.seed_values for o in ok})  # refuses NaN/inf by name
    values = {o.number: {s: sign * v for s, v in o.seed_values.items()} for o in ok}
    by_number = {o.number: o for o in ok}
    if len(ok) == 1:
        return NoiseRanking(ok[0], ok, {}, resolve_margin(margin, ok[0].mean or 0.0), noise, margin)
    first = fit_seed_model(values)
    leader = by_number[min(first.effects, key=lambda k: first.effects[k])]
    absolute = resolve_margin(margin, leader.mean or 0.0)
    ranking = rank_with_model(values, margin=absolute)
    best = by_number[ranking.best]
    others = sorted((o for o in ok if o is not best), key=lambda o: first.effects[o.number])
    ranked = [best, *others]
    needed = None
    if ranking.margin is not None:
        needed = seeds_for_equivalence(ranking.model, ranking.margin)
    return NoiseRanking(
        best,
        ranked,
        dict(ranking.comparisons),
        ranking.margin,
        noise,
        margin,
        ranking.model,
        needed,
    )


def racing_trials_at_most(racing_seeds: int, n_candidates: int) -> int:
    """The most racing trials (one seed each) a phase of ``n_candidates`` configurations runs.

    Args:
        racing_seeds: The extra seeds racing may add (``objective.racing_seeds``).
        n_candidates: The configurations the phase compares.

    Returns:
        Extra seed runs at most: every configuration once per extra seed (racing gives
        seeds to every candidate not yet told apart from the best).
    """
    if n_candidates < 2:
        return 0
    return n_candidates * racing_seeds
