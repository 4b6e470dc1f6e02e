"""The pruner's trade-off: what other rules would prune, on the calibration's draws.

    .venv/bin/python benchmarks/pruner_rules.py [--draws 600] [--table FILE ...]

For each rule, on each complete tuning table (``search/build_table.py``), the share of
trials pruned and of their epochs saved, for a trial equal to the best of 4 earlier trials
(gap 0), 0.5 sigma better, and 2 sigma worse: the calibration's ``pruner_rate`` (3 seeds,
4 references of the same length and scheduler, a real Optuna study). The rules:

- ``median``: behind more than half the references (hptune's ``PairedPruner``);
- ``best``: behind the best reference (more power, but the best's luck counts against the
  trial);

each with the error rate ``alpha`` over the trial's looks at 0.05 (hptune's), 0.2 and 0.5.
The issue's aims: at most 20% of equal trials pruned, at most 5% of 0.5-sigma-better ones,
and at least 35% of the epochs of 2-sigma-worse trials saved.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "search"))
from calibration import pruner_rate
from table import Table, complete_tables

RULES = [(rule, alpha) for rule in ("median", "best") for alpha in (0.05, 0.2, 0.5)]
GAPS = (0.0, -0.5, 2.0)


def rule_pruner(rule: str, alpha: float) -> Any:
    """A factory of ``epoch_pruner``'s pruner with another verdict and error rate."""
    import warnings

    from hptune import ExperimentalWarning
    from hptune.search import PairedPruner

    class BestPruner(PairedPruner):
        def _verdict(self, gaps: list[float], bound: float) -> bool:
            return max(gaps) > bound  # behind the best reference

    kind = PairedPruner if rule == "median" else BestPruner

    def make() -> PairedPruner:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return kind(alpha=alpha, shape_params=("scheduler",))

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, nargs="*", help="tables (default: all complete)")
    parser.add_argument("--draws", type=int, default=600, help="draws per rule, table and gap")
    args = parser.parse_args()
    paths = args.table or complete_tables()
    print(f"{args.draws} draws each; pruned % / epochs saved %, at gaps (sigma) "
          f"{', '.join(f'{g:+.1f}' for g in GAPS)}")  # fmt: skip
    print(f"{'table':<11}{'rule':<8}{'alpha':>6}" +
          "".join(f"{f'gap {g:+.1f}':>17}" for g in GAPS))  # fmt: skip
    for path in paths:
        table = Table.load(path)
        for rule, alpha in RULES:
            cells = []
            for gap in GAPS:
                rate = pruner_rate(table, args.draws, gap, 4, 3, random.Random(1),
                                   pruner=rule_pruner(rule, alpha))  # fmt: skip
                cells.append(f"{rate['rate']:>9.1%} / {rate['epochs_saved']:>4.0%}")
            print(f"{path.stem:<11}{rule:<8}{alpha:>6.2f}" + "".join(f"{c:>17}" for c in cells))


if __name__ == "__main__":
    main()
