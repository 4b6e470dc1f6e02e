"""Why no equivalence margin meets both aims at the seeds racing gives (hptune issue 41, item 6).

    .venv/bin/python benchmarks/equivalence_margin.py [--draws 2000]

Two configurations are compared on ``n`` paired seeds by hptune's own rule
(``hptune.seed_model.rank_with_model``: the seed model, two one-sided tests at 5% for
"equivalent"). Each seed's value is ``configuration effect + seed effect + noise``: a
configuration's seed standard deviation ``sigma`` is 1 (the race's unit), of which a share
``shared`` of the variance is the seed's effect on both configurations (0: the noise is
the seeds' all, as the calibration tables' seeds are close to; 0.5: half of it is shared,
which pairing removes). For each ``shared`` and ``n`` it prints:

- the share of *equal* configurations called "equivalent" at a margin of one seed sigma
  (the largest margin at which configurations one sigma apart stay rarely equivalent: the
  tests hold them to 5% when the margin is at most their difference);
- the margin (in sigma) at which equal configurations are called equivalent half the time,
  and at that margin the share of configurations *one sigma apart* called equivalent;
- hptune's default margin's shares (``default_margin``: the paired noise, at most the
  median seed standard deviation).

Equivalence needs ``|difference| + t x se <= margin`` with ``se = sigma x sqrt(2 / n)``, so
the two aims (at least 50% of equal pairs, at most 5% of pairs a sigma apart) meet only
where ``(t + 0.674) x sqrt(2 / n) <= 1``: about 12 seeds.
"""

from __future__ import annotations

import argparse

import numpy as np

from hptune.seed_model import Verdict, rank_with_model

SEEDS = (3, 4, 5, 8, 12, 16)


def share_equivalent(
    n: int, gap: float, margin: float | None, draws: int, seed: int, shared: float
) -> float:
    """The share of ``draws`` pairs ``gap`` sigma apart that the rule calls equivalent."""
    rng = np.random.default_rng(seed)
    hits = 0
    own = (1.0 - shared) ** 0.5
    for _ in range(draws):
        effect = rng.normal(0.0, shared**0.5, n)  # each seed's effect, the same for both
        a = effect + rng.normal(0.0, own, n)
        b = effect + gap + rng.normal(0.0, own, n)
        values = {"a": dict(enumerate(a)), "b": dict(enumerate(b))}
        ranking = rank_with_model(values, margin=margin)
        (comparison,) = ranking.comparisons.values()
        hits += comparison.verdict == Verdict.EQUIVALENT
    return hits / draws


def half_margin(n: int, draws: int, shared: float) -> float:
    """The margin (sigma) at which equal pairs are called equivalent half the time."""
    low, high = 0.0, 6.0
    for _ in range(12):  # bisection: the share grows with the margin
        mid = (low + high) / 2
        below = share_equivalent(n, 0.0, mid, draws, 1, shared) < 0.5
        low, high = (mid, high) if below else (low, mid)
    return (low + high) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    args = parser.parse_args()
    print("| shared | seeds | equal, margin 1 sigma | margin for 50% of equal | a sigma apart "
          "at it | default margin: equal | default margin: a sigma apart |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for shared in (0.0, 0.5):
        for n in args.seeds:
            at_sigma = share_equivalent(n, 0.0, 1.0, args.draws, 0, shared)
            half = half_margin(n, max(args.draws // 4, 500), shared)
            apart = share_equivalent(n, 1.0, half, args.draws, 2, shared)
            default_equal = share_equivalent(n, 0.0, None, args.draws, 3, shared)
            default_apart = share_equivalent(n, 1.0, None, args.draws, 4, shared)
            print(f"| {shared:g} | {n} | {at_sigma:.1%} | {half:.2f} sigma | {apart:.1%} "
                  f"| {default_equal:.1%} | {default_apart:.1%} |")  # fmt: skip


if __name__ == "__main__":
    main()
