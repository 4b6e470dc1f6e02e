"""hptune.seed_model: the seed model, the family-wise comparison with the best, stepping down."""

import math
import random
import statistics

import pytest

from hptune.seed_model import (
    compare_with_best,
    default_margin,
    fit_seed_model,
    rank_with_model,
    seeds_for_equivalence,
)
from hptune.seeds import Verdict


def test_the_seed_model_of_a_full_table_is_the_two_way_analysis() -> None:
    values = {
        "a": {0: 1.0, 1: 2.0, 2: 3.3},
        "b": {0: 1.2, 1: 2.1, 2: 3.6},
        "c": {0: 0.9, 1: 2.2, 2: 3.1},
    }
    model = fit_seed_model(values)
    for key, by_seed in values.items():  # every configuration has every seed: effects are means
        assert model.effects[key] == pytest.approx(statistics.fmean(by_seed.values()))
    assert model.degrees_of_freedom == (3 - 1) * (3 - 1)
    grand = statistics.fmean(v for by_seed in values.values() for v in by_seed.values())
    seed_mean = {s: statistics.fmean(values[k][s] for k in values) for s in range(3)}
    residual = sum(
        (values[k][s] - model.effects[k] - seed_mean[s] + grand) ** 2
        for k in values
        for s in range(3)
    )
    assert model.variance == pytest.approx(residual / 4)
    # a difference's standard error: the noise times sqrt(2 / n)
    assert model.standard_error("a", "b") == pytest.approx(math.sqrt(model.variance * 2 / 3))


def test_racing_seeds_keep_the_pairing() -> None:
    """A beats B on every seed they share; racing gave A two more seeds, both hard ones. On
    seed means B would win; on the seed model A does, by the gap on the shared seeds."""
    a = {0: 1.00, 1: 1.10, 2: 0.90, 3: 3.00, 4: 3.10}
    b = {0: 1.20, 1: 1.30, 2: 1.10}
    c = {0: 1.50, 1: 1.62, 2: 1.41, 3: 3.52, 4: 3.60}  # gives seeds 3 and 4 their level
    assert statistics.fmean(b.values()) < statistics.fmean(a.values())
    model = fit_seed_model({"a": a, "b": b, "c": c})
    assert model.effects["a"] < model.effects["b"] < model.effects["c"]
    assert model.effects["b"] - model.effects["a"] == pytest.approx(0.2, abs=0.02)
    assert rank_with_model({"a": a, "b": b, "c": c}).best == "a"


def _phases_with_a_false_worse(k: int, n: int, draws: int, common_share: float = 0.4) -> float:
    """Configurations equal in truth; ``common_share`` of the seed variance common to all."""
    rng = random.Random(0)
    with_worse = 0
    for _ in range(draws):
        common = [rng.gauss(0, math.sqrt(common_share)) for _ in range(n)]
        values = {
            c: {s: common[s] + rng.gauss(0, math.sqrt(1 - common_share)) for s in range(n)}
            for c in range(k)
        }
        ranking = rank_with_model(values)
        with_worse += any(c.verdict == Verdict.WORSE for c in ranking.comparisons.values())
    return with_worse / draws


@pytest.mark.parametrize(("k", "n"), [(7, 3), (4, 5)])
def test_equal_configurations_are_called_worse_in_at_most_five_percent_of_phases(k, n) -> None:
    """The share of phases with any "worse" said of a configuration equal to the best is
    about 5%, where testing each against the best by mean on its own said it in 53% (7
    configurations) and 27% (4)."""
    draws = 1000
    rate = _phases_with_a_false_worse(k, n, draws)
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / draws), rate


def test_a_clear_gap_is_found_and_its_detectable_difference_stated() -> None:
    values = {
        "best": {0: 1.00, 1: 1.50, 2: 0.80, 3: 1.20},
        "far": {0: 1.52, 1: 1.98, 2: 1.35, 3: 1.70},
        "near": {0: 1.03, 1: 1.49, 2: 0.84, 3: 1.22},
    }
    result = compare_with_best(fit_seed_model(values), "best", margin=0.1)
    assert result["far"].verdict == Verdict.WORSE
    assert result["near"].verdict == Verdict.EQUIVALENT
    assert 0 < result["far"].detectable < 0.5  # the gap (0.51) is above what they detect
    assert result["far"].ci_low > 0 and result["near"].ci_low < 0 < result["near"].ci_high


def test_a_wild_configuration_leaves_and_the_rest_are_judged_on_their_own_noise() -> None:
    """A rate near divergence (seed values 3.2-3.9) is worse; once it has left, the close
    configurations are told apart on their own noise (the demo's 0.005 and 0.01)."""
    values = {
        "0.005": {0: 2.371, 1: 2.405, 2: 2.364},
        "0.01": {0: 2.201, 1: 2.262, 2: 2.215},
        "0.05": {0: 3.4, 1: 3.9, 2: 3.2},
    }
    one_step = compare_with_best(fit_seed_model(values), "0.01", margin=None)
    assert one_step["0.005"].verdict == Verdict.UNDECIDED  # the wild one's noise swamps it
    ranking = rank_with_model(values)
    assert ranking.best == "0.01"
    assert {k: c.verdict for k, c in ranking.comparisons.items()} == {
        "0.005": Verdict.WORSE,
        "0.05": Verdict.WORSE,
    }


def test_differences_without_noise_decide_nothing() -> None:
    """An exact-match score that moves by 1/48 on both seeds: zero variance, so no noise
    estimate; neither worse nor better (a zero-width interval would say both)."""
    model = fit_seed_model({"a": {0: 0.5, 1: 0.75}, "b": {0: 0.5 + 1 / 48, 1: 0.75 + 1 / 48}})
    (comparison,) = compare_with_best(model, "a", margin=0.01).values()
    assert comparison.verdict == Verdict.UNDECIDED and comparison.ci_low is None
    (tie,) = compare_with_best(model, "a", margin=0.05).values()
    assert tie.verdict == Verdict.EQUIVALENT  # exactly 1/48 apart, within the margin


def test_shifts_exact_but_for_rounding_have_no_noise_either() -> None:
    """Three seeds each 0.001 apart, configurations 0.09 apart: in floating point the model
    leaves residuals of about 1e-16, which must not become a noise estimate (an interval of
    1e-15 would call every difference worse)."""
    values = {
        k: {s: base + 0.001 * s for s in range(3)}
        for k, base in (("lr=1e-4", 2.09), ("lr=1e-3", 2.0), ("lr=1e-2", 2.9))
    }
    model = fit_seed_model(values)
    assert model.variance == 0.0
    ranking = rank_with_model(values)
    assert {c.verdict for c in ranking.comparisons.values()} == {Verdict.UNDECIDED}
    # with no noise left, the default margin is the cap alone (one configuration's seed std)
    assert default_margin(model, values) == pytest.approx(0.001)


def test_the_default_margin_is_the_paired_noise_at_most_one_seed_std() -> None:
    values = {"a": {0: 1.0, 1: 2.0, 2: 3.3}, "b": {0: 1.2, 1: 2.1, 2: 3.6}}
    model = fit_seed_model(values)
    assert default_margin(model, values) == pytest.approx(math.sqrt(2) * model.noise)
    spread = {"a": {0: 1.0, 1: 1.1, 2: 1.2}, "b": {0: 1.3, 1: 1.0, 2: 1.1}}  # little in common
    model = fit_seed_model(spread)
    median_std = statistics.median(statistics.stdev(v.values()) for v in spread.values())
    assert math.sqrt(2) * model.noise > median_std  # the cap applies
    assert default_margin(model, spread) == pytest.approx(median_std)
    assert seeds_for_equivalence(model, 0.1) > 3  # what the decision prints as needed


def test_values_that_cannot_be_modelled_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="finite"):
        fit_seed_model({"a": {0: 1.0, 1: float("nan")}, "b": {0: 1.0, 1: 2.0}})
    with pytest.raises(ValueError, match="share no seed"):
        fit_seed_model({"a": {0: 1.0, 1: 2.0}, "b": {2: 1.0, 3: 2.0}})
    with pytest.raises(ValueError, match="negative"):
        compare_with_best(fit_seed_model({"a": {0: 1.0}, "b": {0: 2.0}}), "a", margin=-1.0)


def test_at_the_seeds_it_states_equivalence_is_shown_about_half_the_time() -> None:
    """Four equal configurations, seed effects shared, noise 1, margin 1: at the seeds
    ``seeds_for_equivalence`` states, two of them are shown equivalent about half the time
    (simulated, 400 phases)."""
    import dataclasses
    import random

    rng = random.Random(0)
    unit = dataclasses.replace(
        fit_seed_model({k: {s: rng.gauss(0, 1) for s in range(3)} for k in range(4)}),
        variance=1.0,
    )
    n = seeds_for_equivalence(unit, 1.0)
    assert n is not None and 8 <= n <= 16
    shown = 0
    for _ in range(400):
        common = [rng.gauss(0, 1) for _ in range(n)]
        values = {k: {s: common[s] + rng.gauss(0, 1) for s in range(n)} for k in range(4)}
        comparison = compare_with_best(fit_seed_model(values), 0, margin=1.0)[1]
        shown += comparison.verdict == Verdict.EQUIVALENT
    assert 0.35 <= shown / 400 <= 0.7
