"""Repeated-seed evaluation: summaries of seed values and paired comparisons.

One run cannot be trusted (the method's first tip), so every trial trains on the same list
of seeds, and configurations are compared seed by seed: seed ``s`` gives both
configurations the same data order and adapter initialisation, which cancels much of the
noise that unpaired means would carry.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PairedDifference", "SeedSummary", "paired_difference", "summarize", "t_quantile"]

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; beyond, the series below.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
#: The normal's 97.5% quantile.
_Z975 = 1.959963984540054


def t_quantile(degrees_of_freedom: int) -> float:
    """The 97.5% quantile of Student's t (for a two-sided 95% interval).

    Args:
        degrees_of_freedom: The number of values minus one.

    Returns:
        The quantile, from a table up to 30 degrees of freedom; beyond, the Cornish-Fisher
        expansion of t around the normal (within 1e-4 of the exact value from 10 degrees of
        freedom on), never the normal's 1.96 itself.

    Raises:
        ValueError: Fewer than one degree of freedom.
    """
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {degrees_of_freedom=}")
    if degrees_of_freedom <= len(_T975):
        return _T975[degrees_of_freedom - 1]
    # Hand-written rather than scipy.stats.t.ppf: four terms of a textbook series
    # (Abramowitz & Stegun 26.7.5) are exact to 4 decimals here, and scipy is not a dependency.
    z, v = _Z975, float(degrees_of_freedom)
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / v ** (k + 1) for k, term in enumerate(terms))


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample standard deviation and 95% interval of the values over seeds.

    Args:
        values: One value per seed.
        mean: Their mean.
        std: Their sample standard deviation; None for a single seed.
        ci_low: The low end of the 95% interval of the mean (Student's t); None for one seed.
        ci_high: Its high end; None for one seed.
    """

    values: tuple[float, ...]
    mean: float
    std: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def n(self) -> int:
        """The number of seeds."""
        return len(self.values)

    def to_dict(self) -> dict[str, object]:
        """The summary as stored and exported.

        Returns:
            ``values``, ``mean``, ``std`` and ``ci95`` (``[low, high]``, or None).
        """
        return {
            "values": list(self.values),
            "mean": self.mean,
            "std": self.std,
            "ci95": None if self.ci_low is None else [self.ci_low, self.ci_high],
        }


def summarize(values: Sequence[float]) -> SeedSummary:
    """Summarize one value per seed; the spread is ``None`` for a single seed.

    Args:
        values: One value per seed.

    Returns:
        Their mean, sample standard deviation and 95% interval of the mean.

    Raises:
        ValueError: No value, or a value that is not finite.
    """
    if not values:
        raise ValueError("cannot summarize an empty list of seed values")
    if any(not math.isfinite(v) for v in values):
        raise ValueError(f"seed values must be finite, got {values=}")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return SeedSummary(tuple(values), mean, None, None, None)
    std = statistics.stdev(values)
    half = t_quantile(len(values) - 1) * std / math.sqrt(len(values))
    return SeedSummary(tuple(values), mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedDifference:
    """``candidate - reference`` over the seeds both have, with its 95% interval.

    Args:
        n: The number of seeds both have.
        mean: The mean difference.
        ci_low: The low end of its 95% interval; None for a single seed.
        ci_high: Its high end; None for a single seed.
    """

    n: int
    mean: float
    ci_low: float | None
    ci_high: float | None

    @property
    def excludes_zero(self) -> bool:
        """Whether the difference is larger than the seed noise (the interval misses 0)."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 0 or self.ci_high < 0


def paired_difference(
    candidate: Mapping[int, float], reference: Mapping[int, float]
) -> PairedDifference:
    """Compare two configurations seed by seed (only seeds present in both count).

    Args:
        candidate: The candidate's value by seed.
        reference: The reference's value by seed.

    Returns:
        The mean of ``candidate - reference`` over the shared seeds, with its 95% interval.

    Raises:
        ValueError: No seed in common, or a value that is not finite.
    """
    common = sorted(set(candidate) & set(reference))
    if not common:
        raise ValueError("the two configurations share no seed; they cannot be paired")
    summary = summarize([candidate[s] - reference[s] for s in common])
    return PairedDifference(len(common), summary.mean, summary.ci_low, summary.ci_high)
