"""Calibration of hptune's decision rules and pruner on draws where the truth is known.

    .venv/bin/python benchmarks/calibration.py [--table FILE ...] [--draws 2000] [--json FILE]
        [--max-seeds 5]

Candidates are built from a tuning table's real runs (``search/build_table.py``), so their
seed noise, and the share of it that all configurations have in common on a seed, are those
of real fine-tuning:

- *equal, re-centred*: K configurations of the table, each shifted so that its mean over all
  the table's seeds is the same; each keeps its own seed-by-seed pattern, so the pairing on
  common seeds is as real as in a phase;
- *equal, relabelled*: one configuration K times, each copy with its seeds permuted: equal in
  truth by construction, with no pairing;
- *separated*: a configuration and another re-centred at a true gap of 0.5, 1 or 2 sigma
  behind it (sigma: the table's median seed standard deviation).

Each draw takes the phase's seeds (3, or 5 as after racing at most) at random from the
table's and calls hptune's decision function (``hptune.phases.rank_within_noise``, as every
phase does; ``--rule model``: the seed model's family-wise rule, ``hptune.seed_model``) on
them. It prints, with the Monte Carlo standard error:

- the rate of "worse beyond seed noise" said of a candidate equal in truth to the best, per
  comparison and per phase (at least one such "worse" among K candidates);
- the rate of "equivalent" at true gaps 0 and 2x the margin (the margin is hptune's default:
  the paired noise of one seed it measures, at most one seed standard deviation);
- the probability that the chosen candidate (the best mean) is within noise of the true best,
  among a best and K-1 candidates at true gaps of 0.5-2 sigma;
- the pruner's rate of pruning a trial equal to or 0.5 sigma better than the best: hptune's
  ``PairedPruner`` (as the epochs and regularization phases build it) in a real Optuna study
  whose earlier trials are the table's runs, the trial reported epoch by epoch.

The column "racing (3 -> up to 5 seeds)" replays racing on the same constructions
(``calibration_racing``: the phase's verdicts after racing, and the seeds it used); the fixed
3 and 5 seeds are the rules at as few and as many seeds as a phase has.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "search"))
from calibration_racing import START, SeedsUsed, decide, first_seeds, pct, seeds_lines, table_rows
from table import Table, complete_tables

PHASE_SIZES = (4, 8)  # the learning-rate grid, the regularization trials
GAPS = (0.5, 1.0, 2.0)


def _truth(table: Table, cell: dict[str, Any]) -> float:
    return statistics.fmean(table.value(cell, s) for s in table.seeds)


def _finite_cells(table: Table) -> list[dict[str, Any]]:
    return [c for c in table.cells if all(math.isfinite(table.value(c, s)) for s in table.seeds)]


#: How a draw takes its seeds from the table's: ``bootstrap`` (with replacement; each
#: position is a seed of its own to the rule) or ``subsample`` (without replacement).
#: Neither is fresh seeds: a subsample's mean varies less than fresh seeds' (the 8-seed mean
#: is fixed by the re-centring), so its error rates are too low; a bootstrap repeats seeds,
#: and a repeated paired difference narrows the rule's interval, so its rates are too high.
DRAW = {"scheme": "bootstrap"}


def _draw(table: Table, n: int, rng: random.Random) -> list[int]:
    """``n`` seeds of the table's, by ``DRAW``'s scheme, in the order the rule sees them."""
    if DRAW["scheme"] == "subsample":
        return rng.sample(table.seeds, min(n, len(table.seeds)))
    return rng.choices(table.seeds, k=n)


def _values(table: Table, cell: dict[str, Any], target: float, draw: list[int],
            relabel: list[int] | None = None) -> dict[int, float]:  # fmt: skip
    """The cell's values on the drawn seeds (by position), shifted so that its mean over all
    the table's seeds is ``target`` (``relabel``: read seed ``relabel[i]`` for the i-th seed
    of the table)."""
    shift = target - _truth(table, cell)
    lookup = dict(zip(table.seeds, relabel or table.seeds, strict=True))
    return {i: table.value(cell, lookup[s]) + shift for i, s in enumerate(draw)}


#: Which rule decides: ``phases`` (``hptune.phases.rank_within_noise``, what the phases use)
#: or ``model`` (``hptune.seed_model.rank_with_model``: the seed model, Tukey's family-wise
#: rule, stepping down).
RULE = {"name": "phases"}


def _rank(values: list[dict[int, float]]) -> tuple[int, dict[int, str], float | None]:
    """The rule's best (by position), each other's verdict, and its margin."""
    if RULE["name"] == "model":
        from hptune.seed_model import rank_with_model

        ranking = rank_with_model(dict(enumerate(values)))
        verdicts = {k: c.verdict.value for k, c in ranking.comparisons.items()}
        return ranking.best, verdicts, ranking.margin
    from hptune.phases import rank_within_noise

    noise_ranking = rank_within_noise(_outcomes(values), "minimize")
    verdicts = {k: c.verdict.value for k, c in noise_ranking.comparisons.items()}
    return noise_ranking.best.number, verdicts, noise_ranking.margin


def _outcomes(values: list[dict[int, float]]) -> list[Any]:
    from hptune.keys import TrialStatus
    from hptune.phases import TrialOutcome

    return [TrialOutcome(i, {}, v, TrialStatus.OK) for i, v in enumerate(values)]


def _rate(hits: int, n: int) -> dict[str, float]:
    p = hits / n if n else math.nan
    return {"rate": p, "se": math.sqrt(p * (1 - p) / n) if n else math.nan, "n": n}


def equal_candidates(table: Table, draws: int, k: int, n_seeds: int, relabel: bool,
                     rng: random.Random, race_to: int | None = None) -> dict[str, Any]:  # fmt: skip
    """K candidates equal in truth: how often is one called worse, or equivalent? (``race_to``:
    racing from ``n_seeds`` seeds up to that many; the seeds it used under ``seeds``.)"""
    cells = _finite_cells(table)
    worse = equivalent = comparisons = phases_with_worse = 0
    used = SeedsUsed(n_seeds, race_to or n_seeds)
    for _ in range(draws):
        seeds = _draw(table, race_to or n_seeds, rng)
        target = _truth(table, rng.choice(cells))
        if relabel:
            cell = rng.choice(cells)
            values = [_values(table, cell, target, seeds, rng.sample(table.seeds, len(table.seeds)))
                      for _ in range(k)]  # fmt: skip
        else:
            values = [_values(table, c, target, seeds) for c in rng.sample(cells, k)]
        _, said, counts = decide(values, n_seeds, race_to, _rank)
        used.add(counts)
        verdicts = list(said.values())
        worse += verdicts.count("worse")
        equivalent += verdicts.count("equivalent")
        comparisons += len(verdicts)
        phases_with_worse += "worse" in verdicts
    out = {"worse_per_comparison": _rate(worse, comparisons),
           "worse_per_phase": _rate(phases_with_worse, draws),
           "equivalent_per_comparison": _rate(equivalent, comparisons)}  # fmt: skip
    return {**out, "seeds": used.figures()} if race_to else out


def separated_pair(table: Table, draws: int, gap: float | None, n_seeds: int,
                   rng: random.Random, race_to: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A best and one candidate ``gap`` sigma behind (None: 2x the margin hptune measures on
    the first ``n_seeds``); ``race_to``: racing up to that many seeds."""
    from hptune.seeds import Verdict

    cells = _finite_cells(table)
    said: dict[str, int] = {v.value: 0 for v in Verdict}
    either, used = 0, SeedsUsed(n_seeds, race_to or n_seeds)
    for _ in range(draws):
        seeds = _draw(table, race_to or n_seeds, rng)
        best, other = rng.sample(cells, 2)
        target = _truth(table, best)
        first = [_values(table, best, target, seeds), _values(table, other, target, seeds)]
        if gap is None:  # the margin is hptune's own default on the draw
            margin = _rank([first_seeds(v, n_seeds) for v in first])[2] or 0.0
            behind = 2 * margin
        else:
            behind = gap * table.sigma
        values = [first[0], _values(table, other, target + behind, seeds)]
        best, verdicts, counts = decide(values, n_seeds, race_to, _rank)
        used.add(counts)
        verdict = "chose the worse" if best == 1 else verdicts[1]  # the worse one won
        said[verdict] = said.get(verdict, 0) + 1
        either += verdicts[1 - best] == "equivalent"
    out = {v: _rate(n, draws) for v, n in said.items()}
    out["equivalent (either chosen)"] = _rate(either, draws)
    return {**out, "seeds": used.figures()} if race_to else out


def chosen_within_noise(table: Table, draws: int, k: int, n_seeds: int, rng: random.Random,
                        race_to: int | None = None) -> dict[str, Any]:  # fmt: skip
    """A best and K-1 candidates at true gaps drawn from 0.5-2 sigma: how often is the best
    mean (what hptune chooses when nothing is equivalent) within 1 sigma of the best?
    (``race_to``: racing up to that many seeds.)"""
    cells = _finite_cells(table)
    hits, used = 0, SeedsUsed(n_seeds, race_to or n_seeds)
    for _ in range(draws):
        seeds = _draw(table, race_to or n_seeds, rng)
        chosen = rng.sample(cells, k)
        target = _truth(table, chosen[0])
        gaps = [0.0] + [rng.uniform(0.5, 2.0) for _ in range(k - 1)]
        values = [_values(table, c, target + g * table.sigma, seeds)
                  for c, g in zip(chosen, gaps, strict=True)]  # fmt: skip
        best, _, counts = decide(values, n_seeds, race_to, _rank)
        used.add(counts)
        hits += gaps[best] <= 1.0
    return {**_rate(hits, draws), "seeds": used.figures()} if race_to else _rate(hits, draws)


def pruner_rate(table: Table, draws: int, gap: float, n_references: int, n_seeds: int,
                rng: random.Random, pruner: Any = None) -> dict[str, float]:  # fmt: skip
    """How often hptune's pruner (or ``pruner()``, a factory) stops a trial ``gap`` sigma
    behind the best of its references (negative: better), reported epoch by epoch after
    them in one study."""
    import optuna

    from hptune.search import epoch_pruner, report_seed_epoch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    by_epochs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for cell in _finite_cells(table):  # the same length and schedule shape, as a phase's
        length = len(table.curve(cell, table.seeds[0])[0])
        by_epochs.setdefault((length, str(cell.get("scheduler"))), []).append(cell)
    groups = [g for g in by_epochs.values() if len(g) > n_references
              and len(table.curve(g[0], table.seeds[0])[0]) >= 2]  # fmt: skip
    if not groups:  # too few cells of one length to stand for a phase's trials
        return _rate(0, 0)
    pruned = used = planned = 0
    for _ in range(draws):
        group = rng.choice(groups)
        seeds = _draw(table, n_seeds, rng)
        references = rng.sample(group, n_references)
        best = min(references, key=lambda c: _truth(table, c))
        test = rng.choice([c for c in group if c not in references])
        study = optuna.create_study(direction="minimize",
                                    pruner=pruner() if pruner else epoch_pruner())  # fmt: skip

        def report(curves: dict[int, list[float]], study: Any = study) -> tuple[bool, int]:
            """Whether the trial was pruned, and the epochs it trained."""
            trial, trained = study.ask(), 0
            for seed, curve in curves.items():
                for epoch, value in enumerate(curve, 1):
                    trained += 1
                    report_seed_epoch(trial, seed, value)
                    trial.report(value, epoch + 100 * seed)  # Optuna wants distinct steps
                    if trial.should_prune():
                        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                        return True, trained
            study.tell(trial, statistics.fmean(c[-1] for c in curves.values()))
            return False, trained

        for cell in references:
            report({i: table.curve(cell, s)[0] for i, s in enumerate(seeds)})
        curves = _recentred_curves(table, test, best, gap * table.sigma, seeds)
        stopped, trained = report(curves)
        pruned += stopped
        used += trained
        planned += sum(len(c) for c in curves.values())
    rate = _rate(pruned, draws)
    rate["epochs_saved"] = 1 - used / planned if planned else math.nan
    return rate


def _recentred_curves(table: Table, cell: dict[str, Any], like: dict[str, Any], gap: float,
                      seeds: list[int]) -> dict[int, list[float]]:  # fmt: skip
    """``cell``'s per-seed curves shifted, epoch by epoch, onto ``like``'s mean curve + gap."""

    def mean_curve(c: dict[str, Any]) -> list[float]:
        curves = [table.curve(c, s)[0] for s in table.seeds]
        return [statistics.fmean(x[e] for x in curves) for e in range(len(curves[0]))]

    own, target = mean_curve(cell), mean_curve(like)
    return {i: [v - o + t + gap for v, o, t in zip(table.curve(cell, s)[0], own, target,
                                                   strict=True)]
            for i, s in enumerate(seeds)}  # fmt: skip


def _block(table: Table, draws: int, n_seeds: int, rng: random.Random,
           race_to: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Every cell's figures at ``n_seeds`` seeds, or racing from them up to ``race_to``
    (with an equal pair too: the fixed blocks get theirs apart, on draws of their own)."""
    block: dict[str, Any] = {}
    for k in [k for k in PHASE_SIZES if k <= len(_finite_cells(table))]:
        for kind, relabel in (("recentred", False), ("relabelled", True)):
            block[f"equal_{kind}_k{k}"] = equal_candidates(table, draws, k, n_seeds, relabel,
                                                           rng, race_to)  # fmt: skip
    for gap in (None, *GAPS) if race_to is None else (None, 0.0, *GAPS):
        key = "pair_gap_2x_margin" if gap is None else f"pair_gap_{gap:g}_sigma"
        block[key] = separated_pair(table, draws, gap, n_seeds, rng, race_to)
    if len(_finite_cells(table)) >= 4:
        block["chosen_within_noise_k4"] = chosen_within_noise(table, draws, 4, n_seeds, rng,
                                                              race_to)  # fmt: skip
    return block


def calibrate(table: Table, draws: int, seed: int = 0, max_seeds: int = 5) -> dict[str, Any]:
    """Every figure on ``table``: at 3 and 5 seeds fixed, racing from 3 up to ``max_seeds``
    (none unless 3 < ``max_seeds`` <= the table's seeds), and the pruner's."""
    rng = random.Random(seed)
    out: dict[str, Any] = {"table": Path(table.path).stem, "draws": draws, "rule": RULE["name"],
                           "sigma": table.sigma, "draw": DRAW["scheme"]}  # fmt: skip
    for n_seeds in (3, 5):
        if n_seeds <= len(table.seeds):
            out[f"{n_seeds}_seeds"] = _block(table, draws, n_seeds, rng)
    added = random.Random(seed + 1)  # cells added since: the others keep their draws
    for n_seeds in (3, 5):
        if (block := out.get(f"{n_seeds}_seeds")) is not None:
            block["pair_gap_0_sigma"] = separated_pair(table, draws, 0.0, n_seeds, added)
    if START < max_seeds <= len(table.seeds):
        racing = _block(table, draws, START, random.Random(seed + 2), max_seeds)
        out["racing"] = {"start": START, "max_seeds": max_seeds, **racing}
    pruner_draws = max(1, draws // 10)  # a study per draw: slower
    references = min(4, len(_finite_cells(table)) - 2)
    if references >= 2:
        out["pruner"] = {f"gap_{g:g}_sigma": pruner_rate(table, pruner_draws, g, references,
                                                         min(3, len(table.seeds)), rng)
                         for g in (0.0, -0.5, 2.0)}  # fmt: skip
    return out


def _pruner_lines(figures: dict[str, Any]) -> list[str]:
    lines = []
    for gap, label in (("0", "equal to"), ("-0.5", "0.5 sigma better than"),
                       ("2", "2 sigma worse than")):  # fmt: skip
        r = figures.get("pruner", {}).get(f"gap_{gap}_sigma", _rate(0, 0))
        if not r["n"]:
            lines.append("pruner: too few configurations of one length in this table")
            break
        saved = r.get("epochs_saved", math.nan)
        lines.append(f"pruner (hptune's PairedPruner, 4 earlier trials, 3 seeds): a trial "
                     f"{label} the best is pruned in {pct(r)} ({r['n']} studies; "
                     f"{100 * saved:.0f}% of its epochs saved)")  # fmt: skip
    return lines


def report(figures: dict[str, Any]) -> str:
    """``calibrate``'s figures as a Markdown table (a column per seed count, and racing's),
    the seeds racing used, and the pruner's rates."""
    lines = [f"## {figures['table']}, rule {figures.get('rule', 'phases')} (sigma "
             f"{figures['sigma']:.4g}, {figures['draws']} draws "
             f"per cell, seeds drawn by {figures['draw']}, ± one Monte Carlo standard error)",
             ""]  # fmt: skip
    columns = {"3 seeds": figures.get("3_seeds", {}), "5 seeds": figures.get("5_seeds", {})}
    racing = figures.get("racing")
    label = ""
    if racing:
        label = f"racing ({racing['start']} -> up to {racing['max_seeds']} seeds)"
        columns[label] = racing
    lines += [f"| what (the truth) | said | {' | '.join(columns)} |",
              "|---|---|" + "---|" * len(columns)]  # fmt: skip
    for what, said, cells in table_rows(list(columns.values()), PHASE_SIZES, GAPS):
        lines.append(f"| {what} | {said} | {' | '.join(cells)} |")
    if racing:
        lines += ["", *seeds_lines(racing, label)]
    return "\n".join([*lines, "", *_pruner_lines(figures)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--table",
        type=Path,
        action="append",
        help="a table (repeatable); default: every table of search/tables/",
    )
    parser.add_argument("--draws", type=int, default=2000, help="draws per cell")
    parser.add_argument("--json", type=Path, help="write every rate with its error (JSON)")
    parser.add_argument("--max-seeds", type=int, default=5,
                        help="racing's cap: seeds per candidate at most (objective.max_seeds; "
                             "3 or less: no racing column)")  # fmt: skip
    parser.add_argument("--draw", choices=("bootstrap", "subsample"), default="bootstrap",
                        help="seeds with replacement (rates high) or without (low)")  # fmt: skip
    parser.add_argument("--rule", choices=("phases", "model"), default="phases",
                        help="the phases' rule (the seed model, through the phases' ranking) "
                             "or the seed model called directly (see RULE)")  # fmt: skip
    args = parser.parse_args()
    DRAW["scheme"] = args.draw
    RULE["name"] = args.rule
    paths = args.table or complete_tables()
    everything = {}
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"--table {path}: no such file")
        figures = calibrate(Table.load(path), args.draws, max_seeds=args.max_seeds)
        everything[path.stem] = figures
        print(report(figures) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1) + "\n")


if __name__ == "__main__":
    main()
