"""Seed values as configuration + seed + noise, and one family-wise rule for a phase.

``hptune.seeds`` compares two configurations seed by seed. This module judges a whole
phase's configurations at once (issue: decisions v3), so that its claims hold as a family:

- ``fit_seed_model``: every configuration's values on every seed it has, fitted as
  ``configuration effect + seed effect + noise`` by least squares. A seed's common part (the
  same data order and initialisation for every configuration) is removed once for all, so
  configurations with different seed sets (racing) are still compared on common seeds, and
  the noise is estimated from all of them with honest degrees of freedom.
- ``compare_with_best``: "worse" claims at Tukey's honestly significant difference (at most
  5% chance per phase of calling a configuration equal to the best worse), equivalence by
  two one-sided tests, and the smallest difference the seeds detect at 80% power.
- ``rank_with_model``: the best configuration, and every other judged against it, stepping
  down: the configurations found worse leave and the noise is estimated again on the rest
  (one wild configuration would otherwise set the noise of all).

The phases decide with it (``hptune.phases.rank_within_noise``); the benchmark suite's
calibration measures it (benchmarks/calibration.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from hptune._lazy import np, stats
from hptune.seeds import Verdict, check_finite, seed_noise, t_quantile

if TYPE_CHECKING:
    from scipy import stats

__all__ = [
    "ALPHA",
    "POWER",
    "ModelComparison",
    "ModelRanking",
    "SeedModel",
    "compare_with_best",
    "default_margin",
    "fit_seed_model",
    "rank_with_model",
    "seeds_for_equivalence",
]

K = TypeVar("K")  # a configuration's key (e.g. a trial number)


@dataclass(frozen=True)
class SeedModel:
    """Seed values as ``configuration effect + seed effect + noise``, fitted by least squares.

    A seed moves every configuration trained on it alike (the same data order and
    initialisation), and that common part cancels in a comparison. The model removes it from
    all the configurations at once: configurations with different seed sets (racing gives
    seeds to some only) are compared on the seeds' common scale, and the noise left is
    estimated from all of them with honest degrees of freedom (the values less the effects
    fitted: ``(configurations - 1) x (seeds - 1)`` when every configuration has every seed).

    Args:
        effects: Each configuration's effect: its mean on the seeds' common scale (its seed
            mean when every configuration has the same seeds).
        variance: The variance of the noise around the model; None without degrees of freedom.
        degrees_of_freedom: Those of ``variance`` (0: none).
        covariance: The effects' covariance by pair of configurations, in units of
            ``variance``.
        n_seeds: Each configuration's number of seeds.
    """

    effects: dict[Any, float]
    variance: float | None
    degrees_of_freedom: int
    covariance: dict[tuple[Any, Any], float]
    n_seeds: dict[Any, int]

    @property
    def noise(self) -> float | None:
        """The noise's standard deviation: one configuration's seed-to-seed spread once the
        seed's common part is removed (a paired difference of one seed has ``sqrt(2)`` times
        it); None without degrees of freedom."""
        return None if self.variance is None else math.sqrt(self.variance)

    def standard_error(self, a: Any, b: Any) -> float | None:
        """The standard error of ``effects[a] - effects[b]``.

        Args:
            a: A configuration.
            b: Another.

        Returns:
            The standard error; None without a noise estimate.
        """
        if self.variance is None:
            return None
        c = self.covariance
        return math.sqrt(max(0.0, self.variance * (c[a, a] + c[b, b] - 2 * c[a, b])))


def fit_seed_model(values_by_candidate: Mapping[K, Mapping[int, float]]) -> SeedModel:
    """Fit ``value = configuration effect + seed effect + noise`` to every seed value.

    Args:
        values_by_candidate: Each configuration's value by seed.

    Returns:
        The fitted model.

    Raises:
        ValueError: No configuration, one without a value, a value that is not finite, or
            configurations in groups that share no seed (they cannot be compared).
    """
    keys = list(values_by_candidate)
    if not keys or any(not v for v in values_by_candidate.values()):
        raise ValueError("every configuration needs at least one seed value")
    check_finite(values_by_candidate)
    _check_connected(values_by_candidate)
    seeds = sorted({s for v in values_by_candidate.values() for s in v})
    rows, target = [], []
    for i, key in enumerate(keys):
        for seed, value in values_by_candidate[key].items():
            row = [0.0] * (len(keys) + len(seeds) - 1)
            row[i] = 1.0
            if (j := seeds.index(seed)) > 0:  # the first seed is the seed effects' origin
                row[len(keys) + j - 1] = 1.0
            rows.append(row)
            target.append(value)
    x, y = np.array(rows), np.array(target)
    # Not numpy.linalg.lstsq: this well-conditioned 0/1 design's inverse is the covariance
    # anyway, and it gives configurations tied in exact arithmetic equal effects where lstsq's
    # rounding parts them by 1e-15, changing which is best (calibration.py: 17 draws).
    unscaled = np.linalg.inv(x.T @ x)
    beta = unscaled @ x.T @ y
    df = len(y) - len(keys) - len(seeds) + 1
    residual = y - x @ beta
    if float(np.abs(residual).max()) <= 1e-9 * float(np.abs(y).max()):
        residual = np.zeros_like(residual)  # exact shifts (rounding left): no noise at all
    shift = float(beta[len(keys) :].sum()) / len(seeds)  # onto the mean seed's scale
    return SeedModel(
        effects={k: float(beta[i]) + shift for i, k in enumerate(keys)},
        variance=float(residual @ residual) / df if df > 0 else None,
        degrees_of_freedom=max(df, 0),
        covariance={
            (a, b): float(unscaled[i, j]) for i, a in enumerate(keys) for j, b in enumerate(keys)
        },
        n_seeds={k: len(v) for k, v in values_by_candidate.items()},
    )


def _check_connected(values_by_candidate: Mapping[K, Mapping[int, float]]) -> None:
    """Refuse configurations that no chain of shared seeds links (no comparison pairs them)."""
    keys = list(values_by_candidate)
    reached, frontier = {keys[0]}, [keys[0]]
    while frontier:
        seeds = set(values_by_candidate[frontier.pop()])
        for key in keys:
            if key not in reached and seeds & set(values_by_candidate[key]):
                reached.add(key)
                frontier.append(key)
    if len(reached) != len(keys):
        apart = [k for k in keys if k not in reached]
        raise ValueError(
            f"configurations {apart!r} share no seed with {keys[0]!r}'s group; "
            "they cannot be paired"
        )


@dataclass(frozen=True)
class ModelComparison:
    """A configuration against the best, on the seed model, with the verdict.

    Args:
        n: The configuration's seeds.
        mean: ``configuration - best`` on the seeds' common scale, oriented so that worse
            is positive.
        ci_low: The low end of its family-wise 95% interval (every configuration of the
            phase together); None without a noise estimate.
        ci_high: Its high end; None without a noise estimate.
        degrees_of_freedom: Those of the noise estimate.
        margin: The equivalence margin the verdict used; None for none.
        verdict: Worse, equivalent, or undecided.
        detectable: The smallest true difference that these seeds find worse 80% of the
            time; None without a noise estimate.
    """

    n: int
    mean: float
    ci_low: float | None
    ci_high: float | None
    degrees_of_freedom: int
    margin: float | None
    verdict: Verdict
    detectable: float | None = None


#: The family-wise error rate of "worse" claims, and the test level of equivalence.
ALPHA = 0.05
#: The power at which ``Comparison.detectable`` is stated.
POWER = 0.80


def compare_with_best(
    model: SeedModel, best: K, *, margin: float | None, alpha: float = ALPHA
) -> dict[K, ModelComparison]:
    """Judge every configuration of ``model`` against ``best``, as one family.

    "Worse" is claimed when the difference from the best exceeds Tukey's honestly significant
    difference (the studentized range of all the configurations, at the model's degrees of
    freedom; Tukey-Kramer where seed counts differ): whichever configuration the data made
    the best, the chance that any configuration equal to the best in truth is called worse
    is at most ``alpha`` for the phase as a whole. "Equivalent" is two one-sided tests at
    ``alpha``: the difference's one-sided bounds lie within ``[-margin, margin]``; it is
    checked first, as a difference shown smaller than the margin does not matter. A model
    without noise left (no degrees of freedom, or seeds that differ by exactly the same
    amount everywhere) has no noise estimate: "equivalent" only for an exact tie within the
    margin, else undecided.

    Args:
        model: The fitted seed model, oriented so that lower is better.
        best: The configuration the others are compared with (the lowest effect).
        margin: The largest difference that does not matter; None never finds equivalence.
        alpha: The family-wise error rate of "worse" and the level of each equivalence test.

    Returns:
        Each configuration but ``best``, with its comparison.

    Raises:
        ValueError: A negative margin, or ``best`` not in the model.
    """
    if margin is not None and margin < 0:
        raise ValueError(f"the equivalence margin must not be negative, got {margin=}")
    if best not in model.effects:
        raise ValueError(f"{best!r} is not a configuration of the model")
    noisy = bool(model.variance)  # None (no df) or 0.0 (no noise left) estimate nothing
    critical = _tukey(len(model.effects), model.degrees_of_freedom, alpha) if noisy else 0.0
    return {
        key: _judged(model, key, best, margin, alpha, critical if noisy else None)
        for key in model.effects
        if key != best
    }


def _judged(
    model: SeedModel,
    key: Any,
    best: Any,
    margin: float | None,
    alpha: float,
    critical: float | None,
) -> ModelComparison:
    """``key`` against ``best`` (``critical``: Tukey's value; None without a noise estimate)."""
    diff = model.effects[key] - model.effects[best]
    df = model.degrees_of_freedom
    se = None if critical is None else model.standard_error(key, best)
    if critical is None or se is None:
        tie = margin is not None and model.variance == 0.0 and abs(diff) <= margin
        verdict = Verdict.EQUIVALENT if tie else Verdict.UNDECIDED
        return ModelComparison(model.n_seeds[key], diff, None, None, df, margin, verdict)
    if margin is not None and abs(diff) + t_quantile(df, 1 - alpha) * se <= margin:
        verdict = Verdict.EQUIVALENT
    elif diff - critical * se > 0:
        verdict = Verdict.WORSE
    elif diff + critical * se < 0:
        verdict = Verdict.BETTER
    else:
        verdict = Verdict.UNDECIDED
    detectable = (critical + t_quantile(df, POWER)) * se
    low, high = diff - critical * se, diff + critical * se
    return ModelComparison(model.n_seeds[key], diff, low, high, df, margin, verdict, detectable)


@functools.lru_cache(maxsize=256)
def _tukey(k: int, degrees_of_freedom: int, alpha: float) -> float:
    """Tukey's critical value for a difference of two of ``k`` means, in standard errors of
    that difference (the studentized range's quantile over sqrt(2); Student's t for k = 2)."""
    if k < 2:
        return 0.0
    return float(stats.studentized_range.ppf(1 - alpha, k, degrees_of_freedom)) / math.sqrt(2)


def seeds_for_equivalence(model: SeedModel, margin: float, alpha: float = ALPHA) -> int | None:
    """The seeds per configuration at which two equal configurations are shown equivalent
    about half the time.

    Equivalence needs ``|difference| + t(1 - alpha) x se <= margin``; for two equal
    configurations the difference is about normal around 0 with standard error
    ``se = noise x sqrt(2 / n)``, so it holds half the time when ``margin`` is
    ``(t(1 - alpha) + z(0.75)) x se`` (``z(0.75)``: the normal's upper quartile, 0.674).

    Args:
        model: A fitted seed model (its noise).
        margin: The equivalence margin.
        alpha: The level of the equivalence tests.

    Returns:
        The seeds (at most 1000); None without a noise estimate, with a margin of zero, or
        beyond 1000.
    """
    if not model.noise or margin <= 0:
        return None
    # Not scipy's power functions: scipy has none for two one-sided tests (their power needs
    # Owen's Q; the noncentral t gives one one-sided test's), and this closed form (Student's t
    # plus the normal's quartile) is what every stored decision's figure was computed with.
    k, quartile = len(model.effects), float(stats.norm.ppf(0.75))
    for n in range(2, 1001):
        df = (k - 1) * (n - 1)
        if (t_quantile(df, 1 - alpha) + quartile) * model.noise * math.sqrt(2 / n) <= margin:
            return n
    return None


def default_margin(
    model: SeedModel, values_by_candidate: Mapping[Any, Mapping[int, float]]
) -> float | None:
    """The equivalence margin when none is set: the noise of a paired difference of one seed
    (``sqrt(2)`` times the model's noise), at most the typical seed standard deviation of one
    configuration (the median over those with two seeds or more); that cap alone when the
    configurations differ by exact shifts (no noise left).

    Args:
        model: The fitted seed model.
        values_by_candidate: The values it was fitted on.

    Returns:
        The margin, in the metric's units; None without a noise estimate.
    """
    if model.noise is None:
        return None
    paired = math.sqrt(2) * model.noise
    median_std = seed_noise(values_by_candidate)
    if median_std is None:
        return paired
    if paired == 0.0:  # exact shifts (a score in steps): the cap alone, else only exact ties
        return median_std
    return min(paired, median_std)


@dataclass(frozen=True)
class ModelRanking:
    """The best configuration and every other's comparison with it.

    Args:
        best: The best configuration's key (the lowest effect).
        comparisons: Every other configuration's comparison with it; a configuration found
            worse keeps the comparison of the step that found it.
        margin: The equivalence margin of the last step.
        model: The last step's model (the configurations still in question).
    """

    best: Any
    comparisons: dict[Any, ModelComparison]
    margin: float | None
    model: SeedModel


def rank_with_model(
    values_by_candidate: Mapping[K, Mapping[int, float]],
    *,
    margin: float | None = None,
    alpha: float = ALPHA,
) -> ModelRanking:
    """Rank configurations on the seed model, stepping down.

    Each step fits the model on the configurations still in question, takes the lowest
    effect as the best and judges the others (``compare_with_best``); those found worse leave
    and the next step estimates the noise on the rest, until no more leave or one is left.

    Args:
        values_by_candidate: Each configuration's value by seed, oriented so that lower is
            better.
        margin: The equivalence margin; None: ``default_margin`` at each step.
        alpha: The family-wise error rate of "worse".

    Returns:
        The best and every other configuration's comparison.

    Raises:
        ValueError: As ``fit_seed_model``, or a negative margin.
    """
    comparisons: dict[Any, ModelComparison] = {}
    pool = list(values_by_candidate)
    while True:
        in_question = {k: values_by_candidate[k] for k in pool}
        model = fit_seed_model(in_question)
        best = min(pool, key=lambda k: model.effects[k])
        step_margin = margin if margin is not None else default_margin(model, in_question)
        step = compare_with_best(model, best, margin=step_margin, alpha=alpha)
        comparisons.update(step)
        worse = [k for k, c in step.items() if c.verdict == Verdict.WORSE]
        if not worse or len(pool) - len(worse) < 2:
            comparisons.pop(best, None)  # a near tie refitted may have moved the best
            return ModelRanking(best, comparisons, step_margin, model)
        pool = [k for k in pool if k not in worse]
