import math

import pytest

from hptune.seeds import paired_difference, summarize, t_quantile


def test_summary_of_three_seeds() -> None:
    s = summarize([1.0, 2.0, 3.0])
    assert s.mean == 2.0
    assert s.std == 1.0
    half = 4.303 / math.sqrt(3)
    assert s.ci_low == pytest.approx(2.0 - half)
    assert s.ci_high == pytest.approx(2.0 + half)
    assert s.to_dict()["ci95"] == [s.ci_low, s.ci_high]


def test_single_seed_has_no_interval() -> None:
    s = summarize([0.5])
    assert (s.mean, s.std, s.ci_low, s.ci_high) == (0.5, None, None, None)


def test_summary_refuses_empty_and_nan() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])


def test_t_quantiles() -> None:
    # the seed summaries' intervals: as printed tables give it up to 30 degrees of freedom
    assert t_quantile(2, printed=True) == 4.303
    assert t_quantile(30, printed=True) == 2.042
    assert t_quantile(2) == pytest.approx(4.302653, abs=1e-6)
    # beyond the table, Student's t (exact values to 4 decimals), never the normal's 1.96
    for df, exact in ((31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799), (1000, 1.9623)):
        assert t_quantile(df, printed=True) == t_quantile(df) == pytest.approx(exact, abs=1e-4)
    assert t_quantile(30) > t_quantile(31) > t_quantile(1000) > 1.96
    assert t_quantile(4, 0.95) == pytest.approx(2.131847, abs=1e-6)
    with pytest.raises(ValueError):
        t_quantile(0)
    with pytest.raises(ValueError):
        t_quantile(3, 0.95, printed=True)


def test_pairing_removes_shared_seed_noise() -> None:
    # Seeds move both configurations together; the difference is a steady 0.1.
    a = {0: 1.0, 1: 2.0, 2: 3.0}
    b = {0: 1.1, 1: 2.1, 2: 3.1}
    diff = paired_difference(b, a)
    assert diff.mean == pytest.approx(0.1)
    assert diff.excludes_zero
    # Unpaired, the same numbers look like noise: the intervals overlap widely.
    assert summarize(list(b.values())).ci_low < summarize(list(a.values())).mean


def test_paired_difference_within_noise_and_common_seeds() -> None:
    diff = paired_difference({0: 1.0, 1: 1.2, 2: 0.9, 7: 5.0}, {0: 1.1, 1: 1.0, 2: 1.0})
    assert diff.n == 3
    assert not diff.excludes_zero
    with pytest.raises(ValueError, match="share no seed"):
        paired_difference({0: 1.0}, {1: 1.0})


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_seed_value_that_is_not_finite_is_refused_by_name(bad) -> None:
    """statistics.stdev raises AttributeError on NaN and inf; the ranking says what it is."""
    from hptune.keys import TrialStatus
    from hptune.phases import TrialOutcome, rank_within_noise
    from hptune.seeds import seed_noise

    with pytest.raises(ValueError, match="seed values must be finite"):
        seed_noise({"a": {0: 1.0, 1: bad}, "b": {0: 1.0, 1: 2.0}})
    outcomes = [
        TrialOutcome(0, {}, {0: 1.0, 1: bad}, TrialStatus.OK),
        TrialOutcome(1, {}, {0: 1.0, 1: 2.0}, TrialStatus.OK),
    ]
    with pytest.raises(ValueError, match="seed values must be finite"):
        rank_within_noise(outcomes, "minimize")
