"""Repeated-seed evaluation: summaries of seed values and paired comparisons.

One run cannot be trusted (the method's first tip), so every trial trains on the same list
of seeds, and configurations are compared seed by seed: seed ``s`` gives both
configurations the same data order and adapter initialisation, which cancels much of the
noise that unpaired means would carry.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

__all__ = [
    "Comparison",
    "Margin",
    "PairedDifference",
    "SeedSummary",
    "Verdict",
    "compare_to_reference",
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


# Quantiles of Student's t for 1..30 degrees of freedom (97.5%: two-sided 95% intervals;
# 95%: one-sided tests of equivalence), as printed tables give them (3 decimals): every stored
# decision and figure so far was computed with these; beyond 30, scipy's exact quantile.
_T_TABLES = {
    0.975: (
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ),
    0.95: (
        6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
        1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725,
        1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697,
    ),
}  # fmt: skip


def t_quantile(degrees_of_freedom: int, probability: float = 0.975) -> float:
    """A quantile of Student's t: 97.5% (two-sided 95% intervals) or 95% (one-sided tests).

    Args:
        degrees_of_freedom: The number of values minus one (or a pooled count).
        probability: 0.975 or 0.95.

    Returns:
        The quantile, from a table (3 decimals) up to 30 degrees of freedom; beyond,
        ``scipy.stats.t.ppf``.

    Raises:
        ValueError: Fewer than one degree of freedom, or another probability.
    """
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {degrees_of_freedom=}")
    if probability not in _T_TABLES:
        raise ValueError(f"probability must be 0.975 or 0.95, got {probability=}")
    table = _T_TABLES[probability]
    if degrees_of_freedom <= len(table):
        return table[degrees_of_freedom - 1]
    from scipy import stats

    return float(stats.t.ppf(probability, degrees_of_freedom))


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


@dataclass(frozen=True)
class Comparison:
    """A candidate against a reference over their shared seeds, with the verdict.

    Args:
        n: The seeds both have.
        mean: The mean of ``candidate - reference`` (oriented by the caller, e.g. so that
            worse is positive).
        ci_low: The low end of its 95% interval; None without a noise estimate.
        ci_high: Its high end; None without a noise estimate.
        degrees_of_freedom: Those of the noise estimate (pooled over candidates when it was).
        margin: The equivalence margin the verdict used; None for none.
        verdict: Worse, better, equivalent, or undecided.
    """

    n: int
    mean: float
    ci_low: float | None
    ci_high: float | None
    degrees_of_freedom: int
    margin: float | None
    verdict: Verdict


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
    for key, values in values_by_candidate.items():  # statistics.stdev raises AttributeError
        if any(not math.isfinite(v) for v in values.values()):
            raise ValueError(f"seed values must be finite, got {key!r}: {dict(values)}")
    stds = [statistics.stdev(v.values()) for v in values_by_candidate.values() if len(v) > 1]
    return statistics.median(stds) if stds else None


def compare_to_reference(
    candidates: Mapping[K, Mapping[int, float]],
    reference: Mapping[int, float],
    *,
    margin: float | None,
) -> dict[K, Comparison]:
    """Compare every candidate with one reference, seed by seed, with a pooled noise estimate.

    Each candidate's differences from the reference on their shared seeds are first judged on
    their own (their own variance, ``n - 1`` degrees of freedom). The candidates that this
    does not separate from the reference are judged again with the variance of the
    differences pooled over all of them, which has more degrees of freedom (``sum(n - 1)``)
    and so a narrower interval; pooling assumes their differences are about equally noisy.

    A candidate is ``equivalent`` when the 90% interval of its mean difference lies within
    ``[-margin, margin]`` (two one-sided tests at 5%), else ``worse`` or ``better`` when the
    95% interval excludes zero, else ``undecided``. Equivalence is checked first: a
    difference shown to be smaller than the margin does not matter, even when it is real.

    Args:
        candidates: Each candidate's value by seed, oriented as the caller wants the sign.
        reference: The reference's value by seed.
        margin: The largest difference that does not matter; None never finds equivalence.

    Returns:
        Each candidate's comparison, by the same keys.

    Raises:
        ValueError: A candidate that shares no seed with the reference, a value that is not
            finite, or a negative margin.
    """
    if margin is not None and margin < 0:
        raise ValueError(f"the equivalence margin must not be negative, got {margin=}")
    diffs: dict[K, list[float]] = {}
    for name, values in candidates.items():
        common = sorted(set(values) & set(reference))
        if not common:
            raise ValueError(f"candidate {name!r} shares no seed with the reference")
        diffs[name] = [values[s] - reference[s] for s in common]
        if any(not math.isfinite(d) for d in diffs[name]):
            raise ValueError(f"seed values must be finite, got {dict(values)=}")
    result: dict[K, Comparison] = {}
    in_question: list[K] = []
    for name, d in diffs.items():
        if len(d) < 2:
            result[name] = Comparison(len(d), statistics.fmean(d), None, None, 0, margin,
                                      Verdict.UNDECIDED)  # fmt: skip
            continue
        own = _judge(d, statistics.variance(d), len(d) - 1, margin)
        result[name] = own
        if own.verdict == Verdict.UNDECIDED:
            in_question.append(name)
    if len(in_question) > 1:
        sums = [sum((x - statistics.fmean(diffs[n])) ** 2 for x in diffs[n]) for n in in_question]
        pooled_df = sum(len(diffs[n]) - 1 for n in in_question)
        pooled_variance = sum(sums) / pooled_df
        for name in in_question:
            result[name] = _judge(diffs[name], pooled_variance, pooled_df, margin)
    return result


def _judge(d: list[float], variance: float, df: int, margin: float | None) -> Comparison:
    mean = statistics.fmean(d)
    se = math.sqrt(variance / len(d))
    half = t_quantile(df) * se
    if margin is not None and abs(mean) + t_quantile(df, 0.95) * se <= margin:
        verdict = Verdict.EQUIVALENT
    elif mean - half > 0:
        verdict = Verdict.WORSE
    elif mean + half < 0:
        verdict = Verdict.BETTER
    else:
        verdict = Verdict.UNDECIDED
    return Comparison(len(d), mean, mean - half, mean + half, df, margin, verdict)
