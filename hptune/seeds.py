"""Repeated-seed evaluation: summaries of seed values and paired comparisons.

One run cannot be trusted (the method's first tip), so every trial trains on the same list
of seeds, and configurations are compared seed by seed: seed ``s`` gives both
configurations the same data order and adapter initialisation, which cancels much of the
noise that unpaired means would carry.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from hptune._lazy import stats

if TYPE_CHECKING:
    from scipy import stats

__all__ = [
    "Margin",
    "PairedDifference",
    "SeedSummary",
    "Verdict",
    "best_so_far",
    "check_finite",
    "paired_difference",
    "resolve_margin",
    "seed_noise",
    "summarize",
    "t_quantile",
]

K = TypeVar("K")  # a candidate's key (e.g. a trial number)

#: An equivalence margin: in the metric's units (``0.02``), or relative to the best value
#: (``"2%"``).
Margin = float | str

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def relative_share(margin: str) -> float:
    """The share of the best value that a relative margin (``"2%"``) names.

    Args:
        margin: A percentage, e.g. ``"2%"`` or ``"0.5 %"``.

    Returns:
        The share, e.g. 0.02.

    Raises:
        ValueError: Not a percentage above 0 and at most 100.
    """
    found = _RELATIVE.match(margin)
    share = float(found.group(1)) / 100 if found else math.nan
    if not 0 < share <= 1:
        raise ValueError(
            f"equivalence margin {margin!r} is not a percentage above 0 and at most 100: give "
            "a number in the metric's units (e.g. 0.02) or a share of the best value "
            '(e.g. "2%")'
        )
    return share


def resolve_margin(margin: Margin | None, best_value: float) -> float | None:
    """An equivalence margin in the metric's units.

    Args:
        margin: Absolute (a number), relative to the best value (``"2%"``), or None.
        best_value: The best candidate's value (a relative margin's base).

    Returns:
        The margin in the metric's units; None for None.

    Raises:
        ValueError: A negative number, or a string that is not a percentage.
    """
    if margin is None:
        return None
    if isinstance(margin, str):
        return relative_share(margin) * abs(best_value)
    if margin < 0:
        raise ValueError(f"the equivalence margin must not be negative, got {margin=}")
    return float(margin)


#: Up to these degrees of freedom the seed summaries' intervals use Student's t as printed
#: tables give it (3 decimals), as every stored summary so far was computed.
_PRINTED_UP_TO = 30


def t_quantile(
    degrees_of_freedom: int, probability: float = 0.975, *, printed: bool = False
) -> float:
    """A quantile of Student's t (``scipy.stats.t.ppf``), the one hptune computes with.

    Args:
        degrees_of_freedom: The number of values minus one (or a pooled count).
        probability: The quantile's probability, e.g. 0.975 for two-sided 95% intervals.
        printed: The 97.5% quantile as printed tables give it (3 decimals) up to 30 degrees
            of freedom, as the seed summaries' intervals have always been computed; exact
            beyond.

    Returns:
        The quantile.

    Raises:
        ValueError: Fewer than one degree of freedom, a probability outside (0, 1), or
            ``printed`` with another probability than 0.975.
    """
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {degrees_of_freedom=}")
    if not 0 < probability < 1:
        raise ValueError(f"probability must lie in (0, 1), got {probability=}")
    if printed:
        if probability != 0.975:
            raise ValueError(f"the printed table is the 97.5% one, got {probability=}")
        if degrees_of_freedom <= _PRINTED_UP_TO:  # the table's values are the exact ones rounded
            return round(_exact_t(degrees_of_freedom, probability), 3)
    return _exact_t(degrees_of_freedom, probability)


@functools.lru_cache(maxsize=1024)
def _exact_t(degrees_of_freedom: int, probability: float) -> float:
    return float(stats.t.ppf(probability, degrees_of_freedom))


def best_so_far(values: Iterable[float], *, minimize: bool = True) -> list[float]:
    """A curve as its best value so far (a value only replaces a strictly worse one).

    Args:
        values: The curve, e.g. one seed's validation value after each epoch.
        minimize: Whether lower is better.

    Returns:
        At each point, the best value up to it.
    """
    best: list[float] = []
    for value in values:
        better = not best or (value < best[-1] if minimize else value > best[-1])
        best.append(value if better else best[-1])
    return best


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
    half = t_quantile(len(values) - 1, printed=True) * std / math.sqrt(len(values))
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


class Verdict(StrEnum):
    """How a candidate compares with a reference configuration, seed by seed."""

    #: Worse beyond seed noise: the 95% interval of the difference lies above zero.
    WORSE = "worse"
    #: Better beyond seed noise: the interval lies below zero.
    BETTER = "better"
    #: Practically equal: the 90% interval lies within plus or minus the margin (two
    #: one-sided tests at 5%), so any difference is smaller than what matters.
    EQUIVALENT = "equivalent"
    #: Not yet told apart: neither separated nor shown equivalent; more seeds would tell.
    UNDECIDED = "undecided"


def seed_noise(values_by_candidate: Mapping[K, Mapping[int, float]]) -> float | None:
    """The typical seed-to-seed standard deviation of one configuration: the median, over
    candidates with two seeds or more, of each one's sample standard deviation.

    The median rather than a pooled variance: one wild candidate (a rate near divergence)
    would otherwise set the noise of the whole phase.

    Args:
        values_by_candidate: Each candidate's value by seed.

    Returns:
        The noise, or None when no candidate has two seeds.

    Raises:
        ValueError: A value that is not finite (NaN or infinite).
    """
    check_finite(values_by_candidate)  # statistics.stdev raises AttributeError on them
    stds = [statistics.stdev(v.values()) for v in values_by_candidate.values() if len(v) > 1]
    return statistics.median(stds) if stds else None


def check_finite(values_by_candidate: Mapping[K, Mapping[int, float]]) -> None:
    """Refuse a seed value that is not finite, naming its candidate.

    Args:
        values_by_candidate: Each candidate's value by seed.

    Raises:
        ValueError: A value that is NaN or infinite.
    """
    for key, values in values_by_candidate.items():
        if any(not math.isfinite(v) for v in values.values()):
            raise ValueError(f"seed values must be finite, got {key!r}: {dict(values)}")
