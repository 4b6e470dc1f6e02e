"""Racing replayed on calibration draws (benchmarks/calibration.py; hptune issue 41).

A phase does not decide at a fixed number of seeds: once its trials are done it ranks them
(``hptune.phases.rank_within_noise``), and while some candidate is undecided (or better: not
told apart from the best) and seeds remain, every such candidate and the best train one
more paired seed, and the phase ranks again on every seed each has
(``hptune.pipeline._racing.queue_racing``). The verdicts that stand are the last ranking's.
``race`` replays that on one draw's values, so that calibration.py measures the rules'
error rates with the seeds racing gives, where the phases' statements are made. The report's
table (``table_rows``) has a column per fixed seed count and one for racing.

What is replayed, as ``queue_racing`` without a compute budget and without failures: a
contender's racing seed is the first extra seed it lacks (``_next_seed``: a candidate found
worse or equivalent in one round and undecided again later takes up the seed it skipped),
and the best trains each of those seeds it lacks (``_best_races``), the same seed as the
contenders'. The others keep the seeds they have. Not replayed: the learning-rate phase's
edge extension (a trial past the grid's edge, queued before racing) and a budget's cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The seeds every candidate trains before racing (``objective.seeds``' default).
START = 3
#: The verdicts that race on: not yet told apart from the best (``NoiseRanking.undecided``).
RACING_VERDICTS = ("undecided", "better")

Values = dict[int, float]  # a candidate's value by seed (a draw's position)
Rank = Callable[[list[Values]], tuple[int, dict[int, str], float | None]]


def decide(values: list[Values], n_seeds: int, race_to: int | None,
           rank: Rank) -> tuple[int, dict[int, str], list[int]]:  # fmt: skip
    """The rule's best and verdicts, and each candidate's seeds: at ``n_seeds`` fixed
    (``race_to`` None: ``values`` hold those seeds), or racing from them up to ``race_to``."""
    if race_to is None:
        best, verdicts, _ = rank(values)
        return best, verdicts, [n_seeds] * len(values)
    return race(values, n_seeds, race_to, rank)


def race(values: list[Values], start: int, most: int,
         rank: Rank) -> tuple[int, dict[int, str], list[int]]:  # fmt: skip
    """Replay racing on one draw.

    Args:
        values: Each candidate's values on the draw's seeds ``0 .. most - 1`` (the first
            ``start`` are the phase's seeds, the rest racing's, in the order it takes them).
        start: The seeds every candidate has before racing.
        most: The most seeds a candidate may have (``objective.max_seeds``).
        rank: The decision rule: the candidates' values (by position in the list) to the
            best's position, every other's verdict, and the margin.

    Returns:
        The last ranking's best and verdicts, and each candidate's number of seeds.
    """
    held = [set(range(start)) for _ in values]
    extra = range(start, most)
    while True:
        best, verdicts, _ = rank(
            [{s: v[s] for s in sorted(h)} for v, h in zip(values, held, strict=True)]
        )
        if len(held[best]) < 2:  # one seed: no noise estimate, no racing (queue_racing)
            break
        plans = {}
        for k, verdict in verdicts.items():
            seed = next((s for s in extra if s not in held[k]), None)
            if verdict in RACING_VERDICTS and seed is not None:
                plans[k] = seed
        if not plans:
            break
        for k, seed in plans.items():
            held[k].add(seed)
        held[best].update(plans.values())  # the best on the same seeds: paired
    return best, verdicts, [len(h) for h in held]


def first_seeds(values: Values, n: int) -> Values:
    """A candidate's values on the draw's first ``n`` seeds (what the phase has before racing)."""
    return {s: v for s, v in values.items() if s < n}


@dataclass
class SeedsUsed:
    """The seeds racing gave, summed over a cell's draws."""

    start: int
    most: int
    draws: int = 0
    candidates: int = 0
    seeds: int = 0
    raced: int = 0
    full: int = 0

    def add(self, used: list[int]) -> None:
        """Count one draw's seeds per candidate (``race``'s)."""
        self.draws += 1
        self.candidates += len(used)
        self.seeds += sum(used)
        self.raced += max(used) > self.start
        self.full += max(used) >= self.most

    def figures(self) -> dict[str, float]:
        """Mean seeds per candidate, mean extra seed runs per phase, the share of phases that
        raced at all and the share that reached the cap (some candidate at ``most`` seeds).
        """
        n = max(self.draws, 1)
        return {
            "seeds_per_candidate": self.seeds / max(self.candidates, 1),
            "extra_runs_per_phase": (self.seeds - self.start * self.candidates) / n,
            "raced_share": self.raced / n,
            "reached_cap_share": self.full / n,
        }


def pct(r: dict[str, float]) -> str:
    """A rate with its Monte Carlo standard error, in percent."""
    return f"{100 * r['rate']:.1f}% ± {100 * r['se']:.1f}"


#: The report's rows on a pair: what was said. "equivalent (either chosen)" counts the pair
#: said equivalent whichever came out best ("equivalent": only when the better one did).
PAIR_SAID = ("worse", "equivalent", "equivalent (either chosen)", "undecided", "chose the worse")
EQUAL_SAID = {"worse, per comparison": "worse_per_comparison",
              "worse, per phase": "worse_per_phase",
              "equivalent, per comparison": "equivalent_per_comparison"}  # fmt: skip


def table_rows(blocks: list[dict[str, Any]], phase_sizes: tuple[int, ...],
               gaps: tuple[float, ...]) -> list[tuple[str, str, list[str]]]:  # fmt: skip
    """The report's rows (the truth, what was said, a cell per block: the fixed seed counts'
    and racing's), each row that some block has; "-" where a block lacks it."""
    pairs = [("2x_margin", "2x the margin"), ("0_sigma", "0 sigma (equal)"),
             *[(f"{g:g}_sigma", f"{g:g} sigma") for g in gaps]]  # fmt: skip
    rows = [(f"{k} equal ({kind})", said, (f"equal_{kind}_k{k}", name))
            for k in phase_sizes for kind in ("recentred", "relabelled")
            for said, name in EQUAL_SAID.items()]  # fmt: skip
    rows += [(f"a pair {label} apart", said, (f"pair_gap_{gap}", said))
             for gap, label in pairs for said in PAIR_SAID]  # fmt: skip
    rows.append(("a best + 3 at 0.5-2 sigma", "chosen within noise", ("chosen_within_noise_k4",)))
    out = []
    for what, said, path in rows:
        cells = [_cell(block, path) for block in blocks]
        if any(cells):
            out.append((what, said, [c or "-" for c in cells]))
    return out


def _cell(block: dict[str, Any], path: tuple[str, ...]) -> str | None:
    """A rate of ``block`` as the report shows it; None where the block lacks the cell (a
    verdict a pair never got: 0%)."""
    if path[0] not in block:
        return None
    rate = block[path[0]]
    for step in path[1:]:
        rate = rate.get(step, {"rate": 0.0, "se": 0.0})
    return pct(rate)


def seeds_lines(block: dict[str, Any], label: str) -> list[str]:
    """The report's lines on the seeds racing used, one per cell of ``block``."""
    lines = []
    for key, cell in block.items():
        seeds = cell.get("seeds") if isinstance(cell, dict) else None
        if not seeds:
            continue
        lines.append(
            f"{label}, {key}: {seeds['seeds_per_candidate']:.2f} seeds per candidate on "
            f"average, {seeds['extra_runs_per_phase']:.2f} extra seed runs per phase, "
            f"raced in {100 * seeds['raced_share']:.0f}% of phases, "
            f"{100 * seeds['reached_cap_share']:.0f}% reached the cap"
        )
    return lines
