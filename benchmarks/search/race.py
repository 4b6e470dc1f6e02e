"""Race hptune's pipeline against the searches users pick instead, at equal compute and at
every budget, by replaying tuning tables (``build_table.py``): no search trains anything,
each looks its runs up in the table, so every searcher sees exactly the same outcomes.

    .venv/bin/python benchmarks/search/race.py [--table FILE ...] [--repeats 70]
        [--budgets 25,50,100,200] [--workers W] [--json FILE] [--quick]

Without ``--table`` it races every table of ``benchmarks/search/tables/``. A table carries
the configuration and grid it was built from, so a table built from any configuration races
with no other input. ``--quick`` builds a small table from ``--config`` (default: the demo)
and races 3 repeats on it.

Each repeat is a distinct split of the table's seeds into a seen half and a held-out half:
every searcher sees only the seen seeds, and is scored on the mean over the held-out ones
(so the p-values are conditional on the table's seeds). Compute is counted in seed-epochs
(one epoch of one seed's run). The suite's tables race at pinned budgets (``PINNED``): 100%
is the bound ``hptune plan`` printed for the race's configuration (3 seeds, racing up to the
seen seeds) before Search v2 (commit f012d32), so every version of hptune is raced at the
same compute; any other table's 100% is the bound of the hptune it races. Searchers:

- hptune with 3 and with 2 paired seeds, the real pipeline (``hptune.tune``) run with
  ``budget: {seed_epochs: B}`` at each budget (its own fit cuts its plan; a budget below its
  minimum is refused, and the row then scores the starting configuration, as the user is
  left with it);
- the statistics-free coordinate search: hptune's phase order, every grid value of each
  phase's hyperparameters on the same 3 seeds (the regularization phase: each existing
  combination at the incoming learning rate x 0.5, 1 and 2), the best mean kept; no tests,
  no racing, no pruning (the ablation);
- random search, Optuna TPE + MedianPruner and Hyperband on the joint grid, and random
  search with every run at the table's largest epoch count (its best checkpoint kept), one
  training seed per search; ``Trainer.hyperparameter_search`` with its defaults (its rate range
  mapped onto the table's in log space). Each peer runs once to the largest budget and is
  read at each;
- exhaustive search on the seen seeds: every cell on every seen seed, the ceiling (it
  ignores the budget).

A searcher with no choice yet scores the starting configuration. Per task and budget: the
share of repeats within noise (held-out regret <= 1 sigma), the median regret, and a paired
Wilcoxon signed-rank test across repeats of hptune (3 seeds) against each other searcher.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_table import QUICK_SEEDS, build, difficulty, difficulty_line, quick_grid, task_config
from searchers import (
    PEERS,
    PHASE_PARAMS,
    Search,
    choice_at,
    coordinate_search,
    exhaustive,
    regularization_candidates,
    run_peer,
    seed_splits,
)
from table import DEMO, Table, complete_tables

BUDGETS = (25, 50, 100, 200)  # % of hptune's default plan (a pinned one: PINNED)
#: The seed-epochs of the suite's budgets: 25/50/100/200% of the default plan of hptune before
#: Search v2 (commit f012d32), pinned so every version of hptune is raced at the same compute
#: (the plan changes with the method). A table not named here (a --quick table, one brought
#: from elsewhere) races at % of the current default plan (``default_plan``).
PINNED = {
    "chat_chrf": {25: 59, 50: 118, 100: 236, 200: 472},
    "full_loss": {25: 68, 50: 136, 100: 272, 200: 544},
    "lora_loss": {25: 68, 50: 136, 100: 272, 200: 544},
    "full_small_batch": {25: 59, 50: 118, 100: 236, 200: 472},
}
#: hptune's use of its budget at or above which a budget over its plan is not "capped".
FILLED = 0.9
MAX_SEEDS = 5  # hptune's objective.max_seeds in the race (at most the seen seeds)
HPTUNE = "hptune (3 seeds)"
HPTUNE_2 = "hptune (2 seeds)"
COORDINATE = "coordinate search, no statistics (3 seeds)"
EXHAUSTIVE = "exhaustive on the seen seeds (ceiling, any budget)"
START = "starting configuration (untuned)"
NO_PRUNING = "hptune (3 seeds, no pruning)"


# --- hptune, replayed -----------------------------------------------------------------------


class TableRunner:
    """hptune's Runner with training replaced by a lookup: the same interface to the pipeline
    (``config``, ``data``, ``train``), the same per-epoch callbacks (pruning, early stopping)."""

    backend = "table"  # recorded with the run's environment
    trains_as = "table"  # its runs are the table's, never mixed with trained ones

    def __init__(self, config: Any, data: Any, table: Table, seen: list[int]) -> None:
        self.config = config
        self.data = data
        self.table = table
        self.seen = seen  # hptune's seed i trains the table's seed seen[i]
        self.leader = False
        self.seed_epochs = 0
        self.snapped = 0

    def with_config(self, config: Any) -> TableRunner:
        """As ``RunnerBase.with_config``, but this runner itself: the race reads its counts."""
        self.config = config
        return self

    def train(self, hp: Any, seed: int, on_epoch: Any = None, **_: Any) -> Any:
        from hptune.train import RunResult

        wanted = {p: getattr(hp, p) for p in self.table.dims}
        config = self.table.snap(wanted)
        self.snapped += any(config[p] != wanted[p] for p in config)
        if seed >= len(self.seen):
            raise RuntimeError(f"hptune asked for seed {seed}; the race lets it see {self.seen}")
        stored = RunResult.from_dict(self.table.runs[_key(config, self.seen[seed])])
        result = RunResult(seed=seed, initial_eval_loss=stored.initial_eval_loss)
        for metrics in stored.epochs:
            self.seed_epochs += 1
            result.epochs.append(metrics)
            if on_epoch is not None and on_epoch(seed, metrics) is False:
                result.stopped_early = True
                break
        if stored.diverged and not result.stopped_early:
            self.seed_epochs += 1  # the epoch the divergence watch stopped in
            result.diverged, result.diverged_at = True, stored.diverged_at
        share = len(result.epochs) / max(len(stored.epochs), 1)
        result.seconds = stored.seconds * share
        result.train_examples = round(stored.train_examples * share)
        result.train_tokens = round(stored.train_tokens * share)
        return result

    def probe_memory(self, batch_sizes: list[int]) -> dict[int, float]:
        raise RuntimeError("a replay has no memory to probe; set phases.batch_size.probe: false")


def _key(config: dict[str, Any], seed: int) -> str:
    from table import key

    return key(config, seed)


def race_config(table: Table, workdir: Path, n_seeds: int, max_seeds: int, sampler_seed: int,
                *, pruning: bool = True, budget: int | None = None) -> Any:  # fmt: skip
    """The table's configuration with each phase's space set to the table's grid; a phase
    whose hyperparameters the grid does not vary is left out."""
    from hptune.config import config_from_dict

    dims = table.dims

    def span(values: list[float]) -> list[float]:
        """hptune's range over the grid's values (it wants 0 < low < high)."""
        high = max(values)
        low = min(v for v in values if v > 0) if any(v > 0 for v in values) else 0.0
        low = low if low < high else high / 100
        return [low, high] if high > 0 else [0.001, 0.01]

    raw = copy.deepcopy(table.config)
    # A journal file: a replay makes thousands of storage calls, SQLite costs ~6x more each.
    raw.update(name="race", output_dir=str(workdir), storage=f"journal:///{workdir / 'race.log'}")
    raw["objective"] = {**raw.get("objective", {}), "seeds": n_seeds, "max_seeds": max_seeds}
    raw.setdefault("training", {})["checkpoints"] = False
    phases = raw.setdefault("phases", {})
    wanted = phases.get("run") or ["baseline", *PHASE_PARAMS]
    varies = {p for p, params in PHASE_PARAMS.items() if any(x in dims for x in params)}
    phases["run"] = [p for p in wanted if p == "baseline" or p in varies]
    # The table holds no run past its grid, so no phase extends an edge here.
    if "learning_rate" in dims:
        phases.setdefault("learning_rate", {}).update(grid=dims["learning_rate"], extend_edges=0)
    if "batch_size" in dims:
        phases.setdefault("batch_size", {}).update(candidates=dims["batch_size"], probe=False)
    if "epochs" in dims:
        phases["epochs"] = {"range": [min(dims["epochs"]), max(dims["epochs"])],
                            "pruning": pruning, "extend_edges": 0}  # fmt: skip
    if "regularization" in phases["run"]:
        regularization = phases.setdefault("regularization", {})
        regularization.update(sampler_seed=sampler_seed, pruning=pruning)
        for param in ("weight_decay", "warmup_ratio"):
            if param in dims:
                regularization[param] = span(dims[param])
        if "scheduler" in dims:
            regularization["schedulers"] = dims["scheduler"]
        # The combinations the table holds, each also tried at the rate x its factors.
        # hptune always tries its incoming configuration first; the candidate the table's
        # start trains as (its cell, once snapped) is that one, so it is not listed again.
        start = table.snap(table.start())
        regularization["candidates"] = [
            c for c in regularization_candidates(table) if any(start[k] != v for k, v in c.items())
        ]
    phases["test_evaluation"] = False
    if budget is not None:
        raw["budget"] = {"seed_epochs": budget}
    return config_from_dict(raw, base_dir=table.config_dir)


def default_plan(table: Table, data: Any, seen: int) -> int:
    """The seed-epochs ``hptune plan`` bounds the race's configuration by (3 seeds)."""
    from hptune.budget import planned_phases
    from hptune.pipeline import resolve_hparams

    with tempfile.TemporaryDirectory(prefix="hptune-race-") as workdir:
        config = race_config(table, Path(workdir), min(3, seen), min(MAX_SEEDS, seen), 0)
        hp = resolve_hparams(config, data.n_train)[0]
        return sum(p.seed_epochs for p in planned_phases(config, hp, data.n_train,
                                                         has_test=False))  # fmt: skip


def budgets_for(table: Table, plan: int, budgets_pct: list[int]) -> dict[int, int]:
    """Each budget in seed-epochs: the table's pinned one (``PINNED``, by the file's stem; a
    percentage not pinned is taken of the pinned 100%), else ``budgets_pct`` % of ``plan``."""
    pinned = PINNED.get(Path(table.path).stem, {})
    hundred = pinned.get(100, plan)
    return {pct: pinned.get(pct, max(1, round(hundred * pct / 100))) for pct in budgets_pct}


@dataclass
class HptuneRun:
    choice: dict[str, Any] | None  # None: the budget was refused
    seed_epochs: int
    phase_epochs: dict[str, int]
    snapped: int
    refused: str = ""


def run_hptune(table: Table, data: Any, n_seeds: int, seen: list[int], sampler_seed: int,
               *, pruning: bool = True, budget: int | None = None) -> HptuneRun:  # fmt: skip
    """One hptune run on the table, seeing only the table's seeds ``seen``."""
    from hptune.exceptions import ConfigError
    from hptune.pipeline import tune

    with tempfile.TemporaryDirectory(prefix="hptune-race-") as workdir:
        config = race_config(table, Path(workdir), min(n_seeds, len(seen)),
                             min(MAX_SEEDS, len(seen)), sampler_seed, pruning=pruning,
                             budget=budget)  # fmt: skip
        runner = TableRunner(config, data, table, seen)
        phase_epochs: dict[str, int] = {}

        def progress(event: dict[str, Any]) -> None:
            if event.get("event") == "phase_done":
                phase_epochs[event["phase"]] = runner.seed_epochs - sum(phase_epochs.values())

        try:
            result = tune(config, progress=progress, runner=runner)  # type: ignore[arg-type]
        except ConfigError as exc:
            return HptuneRun(None, 0, {}, 0, refused=str(exc).split(".")[0])
        choice = table.snap({p: getattr(result.hparams, p) for p in table.dims})
        return HptuneRun(choice, runner.seed_epochs, phase_epochs, runner.snapped)


# --- one repeat -----------------------------------------------------------------------------

_DATA: dict[str, Any] = {}


def _data(table: Table) -> Any:
    """The data hptune's pipeline reads its sizes from (loaded once per table and process)."""
    if table.path not in _DATA:
        from hptune.train import Runner

        with tempfile.TemporaryDirectory(prefix="hptune-race-") as workdir:
            _DATA[table.path] = Runner(race_config(table, Path(workdir), 1, 1, 0)).data
    return _DATA[table.path]


def repeat_once(task: tuple[str, int, list[int]]) -> dict[str, Any]:
    """Every searcher on one split of one table: regret at each budget (in % of the plan)."""
    path, repeat, budgets_pct = task
    logging.getLogger("hptune").setLevel(logging.ERROR)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = _table(path)
    data = _data(table)
    seen, unseen = seed_splits(table, repeat + 1)[repeat]
    truth = table.held_out(unseen)
    plan = default_plan(table, data, len(seen))
    budgets = budgets_for(table, plan, budgets_pct)
    start = table.start()
    out: dict[str, Any] = {"repeat": repeat, "seen": seen, "plan": plan, "budgets": budgets,
                           "regret": {}, "used": {}, "notes": {},
                           "phase_epochs_by_budget": {}}  # fmt: skip

    def score(label: str, pct: int, choice: dict[str, Any] | None, used: int) -> None:
        out["regret"].setdefault(label, {})[pct] = truth.regret(choice or start)
        out["used"].setdefault(label, {})[pct] = used

    started = time.perf_counter()
    race_hptune(table, data, seen, repeat, out, score)
    hptune_seconds = time.perf_counter() - started
    most = max(budgets.values())
    for pct, budget in budgets.items():
        search = coordinate_search(table, seen[:3], budget)
        score(COORDINATE, pct, search.choice, search.used)
    for peer in PEERS:
        search = run_peer(peer, table, most, repeat, seen)
        for pct, budget in budgets.items():
            score(peer, pct, choice_at(search.trajectory, budget), min(search.used, budget))
    ceiling: Search = exhaustive(table, seen)
    for pct in budgets:
        score(EXHAUSTIVE, pct, ceiling.choice, ceiling.used)
        score(START, pct, start, 0)
    out["seconds"] = {"hptune": hptune_seconds, "all": time.perf_counter() - started}
    return out


def race_hptune(table: Table, data: Any, seen: list[int], repeat: int, out: dict[str, Any],
                score: Any) -> None:  # fmt: skip
    """hptune with 3 and with 2 seeds at each of ``out``'s budgets, scored with ``score``;
    hptune (3 seeds)'s spend per phase at each budget, and its run at 100% without pruning,
    into ``out``."""
    plan, budgets = out["plan"], out["budgets"]
    for label, n_seeds in ((HPTUNE, 3), (HPTUNE_2, 2)):
        runs: dict[int, HptuneRun] = {}
        for pct, budget in budgets.items():
            # Every budget its own run: racing spends what a larger budget leaves at run time.
            run = run_hptune(table, data, n_seeds, seen, repeat, budget=budget)
            runs[budget] = run
            score(label, pct, run.choice, run.seed_epochs)
            if run.refused:
                out["notes"].setdefault(label, {})[pct] = "refused: " + run.refused
            elif budget > plan and run.seed_epochs < FILLED * budget:
                out["notes"].setdefault(label, {})[pct] = "capped: its plan is the most it uses"
            if label == HPTUNE:
                out["phase_epochs_by_budget"][pct] = run.phase_epochs
            if label == HPTUNE and pct == 100:
                out["phase_epochs"] = run.phase_epochs
                out["snapped"] = run.snapped
                out["choice_100"] = run.choice
    if 100 in budgets:
        unpruned = run_hptune(table, data, 3, seen, repeat, pruning=False, budget=budgets[100])
        out["no_pruning"] = {"choice": unpruned.choice, "phase_epochs": unpruned.phase_epochs}


_TABLES: dict[str, Table] = {}


def _table(path: str) -> Table:
    if path not in _TABLES:
        _TABLES[path] = Table.load(Path(path))
    return _TABLES[path]


# --- scoring --------------------------------------------------------------------------------


def wilcoxon(ours: list[float], theirs: list[float]) -> float | None:
    """Two-sided p-value of a Wilcoxon signed-rank test on paired regrets (None: all equal)."""
    from scipy.stats import wilcoxon as test

    differences = [a - b for a, b in zip(ours, theirs, strict=True)]
    if all(d == 0 for d in differences):
        return None
    return float(test(differences, zero_method="wilcox").pvalue)


def summarize(table: Table, repeats: list[dict[str, Any]], budgets_pct: list[int]) -> dict:
    """Per budget and searcher: within-noise share, median regret, the paired test against
    hptune (3 seeds), and the seed-epochs used; for hptune (3 seeds) also its spend per
    phase and its share of the budget (`hptune_spend`)."""
    labels = list(repeats[0]["regret"])
    out: dict[str, Any] = {}
    for pct in budgets_pct:
        ours = [r["regret"][HPTUNE][pct] for r in repeats]
        rows = {}
        for label in labels:
            regrets = [r["regret"][label][pct] for r in repeats]
            used = [r["used"][label][pct] for r in repeats]
            notes = [r["notes"].get(label, {}).get(pct) for r in repeats]
            q = (statistics.quantiles(regrets, n=4, method="inclusive") if len(regrets) > 1
                 else [regrets[0]] * 3)  # fmt: skip
            wins = sum(a < b for a, b in zip(ours, regrets, strict=True))
            losses = sum(a > b for a, b in zip(ours, regrets, strict=True))
            rows[label] = {
                "within_noise_share": sum(x <= 1.0 for x in regrets) / len(regrets),
                "median_regret": statistics.median(regrets),
                "regret_quartiles": [q[0], q[2]],
                "seed_epochs_median": statistics.median(used),
                "refused": sum(n is not None and n.startswith("refused") for n in notes),
                "capped": sum(n is not None and n.startswith("capped") for n in notes),
                "hptune_better": wins,
                "hptune_worse": losses,
                "p_value": None if label == HPTUNE else wilcoxon(ours, regrets),
            }
        rows[HPTUNE].update(hptune_spend(repeats, pct))
        out[f"{pct}%"] = {
            "seed_epochs": statistics.median(r["budgets"][pct] for r in repeats),
            "pinned": Path(table.path).stem in PINNED,
            "searchers": rows,
        }
    return out


def hptune_spend(repeats: list[dict[str, Any]], pct: int) -> dict[str, Any]:
    """hptune (3 seeds) at budget ``pct``: the median over repeats of the seed-epochs each
    phase used (0 in a repeat it did not run in), and of its use's share of the budget."""
    spends = [r.get("phase_epochs_by_budget", {}).get(pct, {}) for r in repeats]
    phases = list(dict.fromkeys(p for spend in spends for p in spend))
    return {
        "phase_seed_epochs_median": {
            p: statistics.median(spend.get(p, 0) for spend in spends) for p in phases
        },
        "budget_used_share": statistics.median(
            r["used"][HPTUNE][pct] / r["budgets"][pct] for r in repeats
        ),
    }


def pruning_effect(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Seed-epochs the pruner saved in the epochs and regularization phases at 100%, and how
    often the final choice is the one hptune makes without pruning (same repeats)."""
    pairs = [(r["phase_epochs"], r["no_pruning"]) for r in repeats if "no_pruning" in r]
    if not pairs:
        return {}
    phases = ("epochs", "regularization")
    used = sum(sum(a.get(p, 0) for p in phases) for a, _ in pairs)
    without = sum(sum(b["phase_epochs"].get(p, 0) for p in phases) for _, b in pairs)
    same = sum(r.get("choice_100") == r["no_pruning"]["choice"] for r in repeats
               if "no_pruning" in r)  # fmt: skip
    return {"seed_epochs_with": used, "seed_epochs_without": without,
            "saved_share": 1 - used / without if without else 0.0,
            "same_choice": same, "repeats": len(pairs)}  # fmt: skip


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def report(task: str, table: Table, figures: dict[str, Any], summary: dict[str, Any],
           pruning: dict[str, Any], repeats: int) -> str:  # fmt: skip
    lines = [f"## {task}", "", difficulty_line(table, figures), ""]
    for budget, block in summary.items():
        plan = ("hptune's pre-v2 default plan (pinned, f012d32)" if block.get("pinned")
                else "hptune's default plan")  # fmt: skip
        lines.append(
            f"budget {budget} of {plan} = {block['seed_epochs']:.0f} seed-epochs, "
            f"{repeats} repeats (distinct splits of the table's {len(table.seeds)} seeds; the "
            "p-values are conditional on them):\n"
        )
        header = ["searcher", "seed-epochs used (median)", "within noise", "regret (sigma), "
                  "median [IQR]", "hptune better / worse", "Wilcoxon p (hptune vs it)"]  # fmt: skip
        rows = []
        for label, row in block["searchers"].items():
            within = row["within_noise_share"]
            refused = f" ({row['refused']} refused)" if row["refused"] else ""
            if row["capped"]:
                refused += " (cannot use more than its plan)"
            p = row["p_value"]
            rows.append([
                label + refused,
                f"{row['seed_epochs_median']:.0f}",
                f"{100 * within:.0f}%",
                f"{row['median_regret']:.2f} [{row['regret_quartiles'][0]:.2f}-"
                f"{row['regret_quartiles'][1]:.2f}]",
                "-" if label == HPTUNE else f"{row['hptune_better']} / {row['hptune_worse']}",
                "-" if label == HPTUNE else ("all equal" if p is None else f"{p:.3g}"),
            ])  # fmt: skip
        lines += [markdown(header, rows), "", spend_line(block), ""]
    if pruning:
        lines.append(
            f"pruning (hptune, 3 seeds, at 100%, with and without it, same repeats): the epochs "
            f"and regularization phases used {pruning['seed_epochs_with']} seed-epochs instead "
            f"of {pruning['seed_epochs_without']} ({100 * pruning['saved_share']:.0f}% saved); "
            f"same final choice in {pruning['same_choice']}/{pruning['repeats']} repeats"
        )  # fmt: skip
    return "\n".join(lines)


def spend_line(block: dict[str, Any]) -> str:
    """hptune (3 seeds)'s spend at one budget, in total and per phase (medians)."""
    row = block["searchers"][HPTUNE]
    phases = ", ".join(f"{p} {n:g}" for p, n in row["phase_seed_epochs_median"].items())
    share = 100 * row["budget_used_share"]
    return (
        f"{HPTUNE} spent {row['seed_epochs_median']:g} of {block['seed_epochs']:g} "
        f"seed-epochs ({share:.0f}%): {phases or 'nothing'}"
    )


def race_table(path: Path, repeats: int, budgets_pct: list[int], workers: int) -> dict:
    tasks = [(str(path), r, budgets_pct) for r in range(repeats)]
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _quiet_worker) as pool:
            for result in pool.imap_unordered(repeat_once, tasks):
                results.append(result)
                _said(path, result, len(results), repeats, started)
    else:
        _quiet_worker()
        for task in tasks:
            results.append(repeat_once(task))
            _said(path, results[-1], len(results), repeats, started)
    results.sort(key=lambda r: r["repeat"])
    return {"repeats": results, "seconds": time.perf_counter() - started}


def _quiet_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _said(path: Path, result: dict[str, Any], done: int, total: int, started: float) -> None:
    regrets = result["regret"][HPTUNE]
    print(f"{path.stem} repeat {result['repeat']} ({done}/{total}, "
          f"{time.perf_counter() - started:.0f} s): hptune regret "
          + ", ".join(f"{pct}%: {r:.2f}" for pct, r in regrets.items()), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, action="append",
                        help="a table (repeatable); default: every table of tables/")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=70,
                        help="seed splits (70: every split of 8 seeds in halves)")  # fmt: skip
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)),
                        help="budgets in %% of hptune's default plan, pinned for the "
                        "suite's tables (25,50,100,200)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="repeats replayed in parallel")
    parser.add_argument("--json", type=Path, help="write every figure per task x budget x "
                        "searcher, and each repeat's regrets (JSON)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="race 3 repeats on a small table built from --config")  # fmt: skip
    parser.add_argument("--config", type=Path, default=DEMO, help="with --quick")
    args = parser.parse_args()
    budgets_pct = [int(b) for b in args.budgets.split(",")]
    if args.quick:
        out = Path(tempfile.mkdtemp(prefix="hptune-race-")) / "quick.json"
        raw, directory = task_config(args.config, quick=True)
        build(out, raw, directory, quick_grid(raw), list(range(QUICK_SEEDS)))
        args.table, args.repeats = [out], min(args.repeats, 3)
    paths = args.table or complete_tables()
    everything: dict[str, Any] = {}
    texts = []
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"--table {path}: no such file (build_table.py builds tables)")
        table = _table(str(path))
        figures = difficulty(table)
        raced = race_table(path, args.repeats, budgets_pct, args.workers)
        summary = summarize(table, raced["repeats"], budgets_pct)
        pruning = pruning_effect(raced["repeats"])
        texts.append(report(path.stem, table, figures, summary, pruning, args.repeats))
        everything[path.stem] = {"difficulty": figures, "budgets": summary, "pruning": pruning,
                                 "race_seconds": raced["seconds"],
                                 "repeats": raced["repeats"]}  # fmt: skip
        print(f"{path.stem}: raced in {raced['seconds']:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1, default=str) + "\n")
    print("\n" + "\n\n".join(texts))


if __name__ == "__main__":
    main()
