"""Race hptune's pipeline against the searches users pick instead, at equal compute, by
replaying the demo's tabular benchmark (``build_table.py``): no search trains anything, each
looks its runs up in the table, so every searcher sees exactly the same training outcomes.

    .venv/bin/python benchmarks/search/race.py [--table FILE] [--repeats 20] [--quick]
        [--choices FILE] [--json FILE]

``--choices`` writes every hptune repeat's choice after each phase, so two versions of
hptune can be compared on the same table (``PYTHONPATH=OTHER_CHECKOUT`` runs another one;
the script uses only ``hptune.pipeline.tune``, ``resolve_hparams``, ``load_config`` and
``hptune.train``).

Searchers (each repeated with search seeds 0, 1, ...):

- hptune: the real pipeline (``hptune.tune``: five phases, paired seeds, its decision rules),
  its runner replaced by a table lookup. Its regularization phase samples continuous weight
  decay and warmup; each sample is snapped to the nearest grid value.
- HF ``Trainer.hyperparameter_search`` with its defaults, read from the installed
  transformers: ``default_hp_space_optuna`` (learning rate 1e-6..1e-4 log, epochs 1..5, seed
  1..40, batch 4..64), ``default_compute_objective`` (the validation loss) and an Optuna study
  with its default sampler (TPE) and pruner; with the default ``eval_strategy="no"`` there is
  one evaluation, after training, so the pruner never acts. Weight decay, scheduler and warmup
  stay at the Trainer's defaults. Each sample is snapped to the nearest grid value.
- Optuna TPE + MedianPruner on the joint grid, one seed per search (a hand-written loop).
- Random search on the joint grid, one seed per search.
- Hyperband (Optuna's HyperbandPruner over epochs, random sampling), one seed per search.

Compute is counted in training epochs (one epoch of one seed). The budget of every peer is the
median of what hptune used; each search is also followed to 3x that budget to see when it gets
within noise. The truth of a configuration is its mean final validation loss over all the
table's seeds; the noise unit sigma is the median over configurations of the seed standard
deviation. Regret = (truth of the found configuration - best truth) / sigma.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_table import (
    DEMO,
    EFFECTIVE_BATCH,
    GRID,
    QUICK_GRID,
    QUICK_SEEDS,
    build,
    configurations,
    key,
)

LOG_SCALE = {"learning_rate", "weight_decay", "batch_size"}
FOLLOW = 3  # peers are followed to this multiple of the budget
SEEN = 5  # seeds a searcher may see in a repeat; the others are its held-out truth
MAX_SEEDS = 5  # hptune's objective.max_seeds in the race (racing uses every seen seed)


# --- the table ------------------------------------------------------------------------------


@dataclass
class Table:
    grid: dict[str, list[Any]]
    runs: dict[str, dict[str, Any]]
    seeds: list[int] = field(init=False)
    truths: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.seeds = sorted({json.loads(k)["seed"] for k in self.runs})
        missing = [k for c in configurations(self.grid) for s in self.seeds
                   if (k := key(c, s)) not in self.runs]  # fmt: skip
        if missing:
            raise SystemExit(f"the table misses {len(missing)} runs; finish it with build_table.py")
        self.truths = {self.name(c): self.truth(c) for c in configurations(self.grid)}

    @classmethod
    def load(cls, path: Path) -> Table:
        raw = json.loads(path.read_text())
        return cls(raw["grid"], raw["runs"])

    @staticmethod
    def name(config: dict[str, Any]) -> str:
        return json.dumps(config, sort_keys=True)

    def snap(self, values: dict[str, Any]) -> dict[str, Any]:
        """The grid configuration nearest to ``values`` (log scale for rates and sizes)."""

        def distance(name: str, a: Any, b: Any) -> float:
            if isinstance(a, str):
                return 0.0 if a == b else 1.0
            return abs(math.log(a) - math.log(b)) if name in LOG_SCALE else abs(a - b)

        return {
            name: min(options, key=lambda o, n=name: (distance(n, values[n], o), o))
            for name, options in self.grid.items()
        }

    def curve(self, config: dict[str, Any], seed: int) -> tuple[list[float], bool]:
        """A run's validation loss per epoch, and whether it diverged."""
        run = self.runs[key(config, seed)]
        return [e["eval_loss"] for e in run["epochs"]], bool(run["diverged"])

    def final(self, config: dict[str, Any], seed: int) -> float:
        curve, diverged = self.curve(config, seed)
        value = curve[-1] if curve and not diverged else math.inf
        return value if math.isfinite(value) else math.inf

    def truth(self, config: dict[str, Any], seeds: list[int] | None = None) -> float:
        return statistics.fmean(self.final(config, s) for s in (seeds or self.seeds))

    @property
    def best(self) -> float:
        return min(self.truths.values())

    def held_out(self, seeds: list[int]) -> HeldOut:
        """The truth of every configuration on ``seeds`` only (those a searcher never saw)."""
        return HeldOut(
            self, {self.name(c): self.truth(c, seeds) for c in configurations(self.grid)}
        )

    @property
    def sigma(self) -> float:
        finals = [[self.final(c, s) for s in self.seeds] for c in configurations(self.grid)]
        return statistics.median(
            statistics.stdev(f) for f in finals if all(math.isfinite(v) for v in f)
        )

    def regret(self, config: dict[str, Any] | None) -> float:
        if config is None:
            return math.inf
        return (self.truths[self.name(config)] - self.best) / self.sigma


@dataclass
class HeldOut:
    """Regrets measured on held-out seeds: the truth a searcher is scored on."""

    table: Table
    truths: dict[str, float]

    def regret(self, config: dict[str, Any] | None) -> float:
        if config is None:
            return math.inf
        best = min(self.truths.values())
        return (self.truths[self.table.name(config)] - best) / self.table.sigma


#: (epochs used so far, the searcher's current choice) each time its choice changes.
Trajectory = list[tuple[int, dict[str, Any]]]


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
        self.epochs_used = 0
        self.snapped = 0

    def train(self, hp: Any, seed: int, on_epoch: Any = None, **_: Any) -> Any:
        from hptune.train import RunResult

        wanted = {name: getattr(hp, name) for name in self.table.grid}
        config = self.table.snap(wanted)
        self.snapped += config != wanted
        if seed >= len(self.seen):
            raise RuntimeError(f"hptune asked for seed {seed}; the race lets it see {self.seen}")
        stored = RunResult.from_dict(self.table.runs[key(config, self.seen[seed])])
        result = RunResult(seed=seed, initial_eval_loss=stored.initial_eval_loss)
        for metrics in stored.epochs:
            self.epochs_used += 1
            result.epochs.append(metrics)
            if on_epoch is not None and on_epoch(seed, metrics) is False:
                result.stopped_early = True
                break
        if stored.diverged and not result.stopped_early:
            self.epochs_used += 1  # the epoch the divergence watch stopped in
            result.diverged, result.diverged_at = True, stored.diverged_at
        share = len(result.epochs) / max(len(stored.epochs), 1)
        result.seconds = stored.seconds * share
        result.train_examples = round(stored.train_examples * share)
        result.train_tokens = round(stored.train_tokens * share)
        return result

    def probe_memory(self, batch_sizes: list[int]) -> dict[int, float]:
        raise RuntimeError("a replay has no memory to probe; set phases.batch_size.probe: false")


def race_config(
    table: Table, workdir: Path, n_seeds: int, sampler_seed: int, *, pruning: bool = True,
    max_seeds: int = 1,
) -> Any:  # fmt: skip
    """The demo's configuration with its spaces set to the table's grid; seeds 0..n-1 (the
    runner maps them onto the seeds this repeat may see), racing up to ``MAX_SEEDS``."""
    from hptune.config import load_config

    grid = table.grid

    def span(values: list[float]) -> list[float]:
        low, high = min(values), max(values)
        return [low, high] if low < high else [low * 0.8, low * 1.25]

    raw = yaml.safe_load(DEMO.read_text())
    raw["name"] = "race"
    raw["output_dir"] = str(workdir)
    raw["storage"] = f"sqlite:///{workdir / 'race.db'}"
    raw["objective"]["seeds"] = n_seeds
    raw["objective"]["max_seeds"] = max_seeds
    raw["training"]["checkpoints"] = False
    phases = raw["phases"]
    phases["learning_rate"]["grid"] = grid["learning_rate"]
    phases["batch_size"].update(candidates=grid["batch_size"], probe=False)
    phases["epochs"] = {"range": [min(grid["epochs"]), max(grid["epochs"])], "pruning": pruning}
    phases["regularization"].update(
        weight_decay=span(grid["weight_decay"]),
        warmup_ratio=span(grid["warmup_ratio"]),
        schedulers=grid["scheduler"],
        sampler_seed=sampler_seed,
        pruning=pruning,
    )
    phases["test_evaluation"] = False
    path = workdir / "race.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@dataclass
class HptuneRun:
    trajectory: Trajectory  # the first entry is the baseline phase's measured start
    phase_epochs: dict[str, int]  # epochs each phase used
    snapped: int  # replays whose configuration was snapped to the grid


def run_hptune(
    table: Table, data: Any, n_seeds: int, seen: list[int], sampler_seed: int,
    *, pruning: bool = True,
) -> HptuneRun:  # fmt: skip
    """One hptune run on the table, seeing only the table's seeds ``seen``."""
    from hptune.pipeline import resolve_hparams, tune

    with tempfile.TemporaryDirectory(prefix="hptune-race-") as workdir:
        n_seeds = min(n_seeds, len(seen))
        config = race_config(table, Path(workdir), n_seeds, sampler_seed, pruning=pruning,
                             max_seeds=min(MAX_SEEDS, len(seen)))  # fmt: skip
        runner = TableRunner(config, data, table, seen)
        hp = resolve_hparams(config, data.n_train)[0]
        run = HptuneRun([], {}, 0)

        def progress(event: dict[str, Any]) -> None:
            nonlocal hp
            if event.get("event") == "phase_done":
                hp = event["result"].decision.apply(hp)
                before = sum(run.phase_epochs.values())
                run.phase_epochs[event["phase"]] = runner.epochs_used - before
                run.trajectory.append((runner.epochs_used, snap_hparams(table, hp)))

        tune(config, progress=progress, runner=runner)  # type: ignore[arg-type]
        run.snapped = runner.snapped
        return run


def snap_hparams(table: Table, hp: Any) -> dict[str, Any]:
    return table.snap({name: getattr(hp, name) for name in table.grid})


# --- the peers: Optuna loops on the table ---------------------------------------------------

#: Proposes (configuration, seed) for a trial.
Suggest = Callable[[Any], tuple[dict[str, Any], int]]


def optuna_search(table: Table, limit: int, sampler: Any, pruner: Any, suggest: Suggest,
                  *, reports: bool, name: str = "race") -> Trajectory:  # fmt: skip
    """A study.ask/tell loop on the table until ``limit`` epochs are used.

    With ``reports`` the validation loss is reported after each epoch and the pruner may stop
    the trial; a diverged run reports NaN from its divergence on (training goes on with NaN
    losses, as no divergence watch stops it). A trial cut by the budget is not scored.
    """
    import optuna

    # A fixed study name: Hyperband assigns brackets by a hash of it (Optuna's docs ask for
    # one to make its pruning reproducible); an unnamed study gets a random one.
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner,
                                study_name=name)  # fmt: skip
    used, best = 0, math.inf
    trajectory: Trajectory = []
    while used < limit:
        trial = study.ask()
        config, seed = suggest(trial)
        curve, diverged = table.curve(config, seed)
        curve = (curve + [math.nan] * config["epochs"])[: config["epochs"]]  # NaN once diverged
        state = "complete"
        for epoch, value in enumerate(curve, 1):
            if used >= limit:
                state = "cut"
                break
            used += 1
            if reports:
                trial.report(value, epoch)
                if trial.should_prune():
                    state = "pruned"
                    break
        if state == "cut":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif diverged or not math.isfinite(curve[-1]):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)  # NaN: Optuna fails it
        else:
            study.tell(trial, curve[-1])
            if curve[-1] < best:
                best = curve[-1]
                trajectory.append((used, config))
    return trajectory


def joint_space(table: Table, seed: int) -> Suggest:
    """Every grid parameter as a categorical; one fixed training seed for the whole search."""

    def suggest(trial: Any) -> tuple[dict[str, Any], int]:
        return {n: trial.suggest_categorical(n, v) for n, v in table.grid.items()}, seed

    return suggest


def hf_default_space(table: Table, seen: list[int]) -> Suggest:
    """transformers' ``default_hp_space_optuna`` with the Trainer's defaults for the rest."""
    from transformers.trainer_utils import default_hp_space_optuna
    from transformers.training_args import TrainingArguments

    defaults = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="hptune-race-hf-"))

    def suggest(trial: Any) -> tuple[dict[str, Any], int]:
        space = default_hp_space_optuna(trial)
        values = {
            "learning_rate": space["learning_rate"],
            "batch_size": space["per_device_train_batch_size"],
            "epochs": space["num_train_epochs"],
            "weight_decay": max(defaults.weight_decay, 1e-12),  # 0.0: log scale snaps it up
            "scheduler": str(getattr(defaults.lr_scheduler_type, "value", "linear")),
            # transformers 5 folds warmup_ratio into warmup_steps (a float below 1 is a ratio)
            "warmup_ratio": float(getattr(defaults, "warmup_ratio", 0.0) or defaults.warmup_steps),
        }
        seed = seen[space["seed"] % len(seen)]  # the seed is searched too
        return table.snap(values), seed

    return suggest


def run_peer(name: str, table: Table, limit: int, repeat: int, seen: list[int]) -> Trajectory:
    import optuna

    seed = seen[0]  # one training seed for the whole search, as a hand-written loop has
    if name == "HF hyperparameter_search (defaults)":
        return optuna_search(table, limit, optuna.samplers.TPESampler(seed=repeat),
                             optuna.pruners.MedianPruner(), hf_default_space(table, seen),
                             reports=False)  # fmt: skip
    if name == "Optuna TPE + MedianPruner":
        return optuna_search(table, limit, optuna.samplers.TPESampler(seed=repeat),
                             optuna.pruners.MedianPruner(), joint_space(table, seed),
                             reports=True)  # fmt: skip
    if name == "random search":
        return optuna_search(table, limit, optuna.samplers.RandomSampler(seed=repeat),
                             optuna.pruners.NopPruner(), joint_space(table, seed),
                             reports=False)  # fmt: skip
    if name == "Hyperband":
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(table.grid["epochs"]), reduction_factor=3
        )
        return optuna_search(table, limit, optuna.samplers.RandomSampler(seed=repeat), pruner,
                             joint_space(table, seed), reports=True,
                             name=f"hyperband-{repeat}")  # fmt: skip
    raise ValueError(f"unknown peer {name=}")


PEERS = ["HF hyperparameter_search (defaults)", "Optuna TPE + MedianPruner", "random search",
         "Hyperband"]  # fmt: skip


# --- scoring --------------------------------------------------------------------------------


def choice_at(trajectory: Trajectory, budget: float) -> dict[str, Any] | None:
    chosen = None
    for used, config in trajectory:
        if used <= budget:
            chosen = config
    return chosen


def epochs_to_noise(truth: HeldOut, trajectory: Trajectory) -> int | None:
    return next((used for used, c in trajectory if truth.regret(c) <= 1.0), None)


@dataclass
class Score:
    searcher: str
    budgets: list[int]
    regrets: list[float]
    to_noise: list[int | None]

    def row(self, follow: float | None) -> list[str]:
        finite = [r for r in self.regrets if math.isfinite(r)]
        within = sum(r <= 1.0 for r in self.regrets)
        reached = sorted(e for e in self.to_noise if e is not None)
        never = len(self.to_noise) - len(reached)
        to_noise = f"{statistics.median(reached):.0f}" if reached else "-"
        if never:
            limit = f">{follow:.0f}" if follow else "not reached"
            to_noise += f" ({never} of {len(self.to_noise)} {limit})"
        q = statistics.quantiles(finite, n=4) if len(finite) > 1 else [math.nan] * 3
        return [
            self.searcher,
            f"{statistics.median(self.budgets):.0f}",
            f"{statistics.median(finite):.2f}" if finite else "inf",
            f"{q[0]:.2f}-{q[2]:.2f}",
            f"{within}/{len(self.regrets)} ({100 * within / len(self.regrets):.0f}%)",
            to_noise,
        ]

    def summary(self) -> dict[str, Any]:
        """The figures of the row, as numbers (``--json``)."""
        finite = [r for r in self.regrets if math.isfinite(r)]
        return {
            "within_noise_share": sum(r <= 1.0 for r in self.regrets) / len(self.regrets),
            "median_regret": statistics.median(finite) if finite else None,
            "epochs_median": statistics.median(self.budgets),
            "repeats": len(self.regrets),
        }


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def seen_seeds(table: Table, repeat: int) -> tuple[list[int], list[int]]:
    """The seeds every searcher may see in this repeat (in the order hptune uses them), and
    the held-out ones its choice is scored on."""
    seen = random.Random(repeat).sample(table.seeds, min(SEEN, len(table.seeds) - 1))
    return seen, [s for s in table.seeds if s not in seen]


def race(table: Table, repeats: int) -> dict[str, Any]:
    from hptune.config import load_config
    from hptune.train import Runner

    with tempfile.TemporaryDirectory(prefix="hptune-race-") as workdir:
        data = Runner(race_config(table, Path(workdir), 1, 0)).data
    scores: dict[str, Score] = {}
    choices: dict[str, list[dict[str, Any]]] = {}  # each hptune repeat's choice per phase
    runs: dict[str, list[HptuneRun]] = {}
    snapped = 0
    variants = {"hptune (3 seeds)": (3, True), "hptune (2 seeds)": (2, True),
                NO_PRUNING: (3, False)}  # fmt: skip
    for label, (n_seeds, pruning) in variants.items():
        score = Score(label, [], [], [])
        if label != NO_PRUNING:  # that one is only the pruning check's reference
            scores[label] = score
        for repeat in range(repeats):
            seen, unseen = seen_seeds(table, repeat)
            truth = table.held_out(unseen)
            start = time.perf_counter()
            run = run_hptune(table, data, n_seeds, seen, sampler_seed=repeat, pruning=pruning)
            runs.setdefault(label, []).append(run)
            snapped += run.snapped
            final = run.trajectory[-1]
            choices.setdefault(label, []).append(
                {"repeat": repeat, "seen": seen, "regret": truth.regret(final[1]),
                 "phase_epochs": run.phase_epochs,
                 "after_each_phase": [{"epochs_used": u, "choice": c}
                                      for u, c in run.trajectory]}
            )  # fmt: skip
            score.budgets.append(final[0])
            score.regrets.append(truth.regret(final[1]))
            score.to_noise.append(epochs_to_noise(truth, run.trajectory))
            print(f"{label} repeat {repeat}: {final[0]} epochs, regret "
                  f"{score.regrets[-1]:.2f} sigma ({time.perf_counter() - start:.1f} s)",
                  flush=True)  # fmt: skip
    budget = int(statistics.median(scores["hptune (3 seeds)"].budgets))
    for name in PEERS:
        score = scores[name] = Score(name, [], [], [])
        for repeat in range(repeats):
            seen, unseen = seen_seeds(table, repeat)
            truth = table.held_out(unseen)
            trajectory = run_peer(name, table, FOLLOW * budget, repeat, seen)
            score.budgets.append(budget)  # a peer runs until the budget is spent
            score.regrets.append(truth.regret(choice_at(trajectory, budget)))
            score.to_noise.append(epochs_to_noise(truth, trajectory))
        print(f"{name}: median regret {statistics.median(score.regrets):.2f} sigma", flush=True)
    base = load_config(DEMO)
    from hptune.pipeline import resolve_hparams

    baseline = snap_hparams(table, resolve_hparams(base, data.n_train)[0])
    pruning = pruning_effect(runs["hptune (3 seeds)"], runs[NO_PRUNING])
    return {"budget": budget, "scores": scores, "snapped": snapped, "baseline": baseline,
            "choices": choices, "pruning": pruning}  # fmt: skip


PRUNED_PHASES = ("epochs", "regularization")
NO_PRUNING = "hptune (3 seeds, no pruning)"


def pruning_effect(pruned: list[HptuneRun], unpruned: list[HptuneRun]) -> dict[str, Any]:
    """Epochs the pruner saved in the epochs and regularization phases, and how often the
    final choice is the one hptune makes without pruning (same repeats, same seeds)."""
    used = [sum(r.phase_epochs.get(p, 0) for p in PRUNED_PHASES) for r in pruned]
    without = [sum(r.phase_epochs.get(p, 0) for p in PRUNED_PHASES) for r in unpruned]
    same = [
        a.trajectory[-1][1] == b.trajectory[-1][1] for a, b in zip(pruned, unpruned, strict=True)
    ]
    return {
        "epochs_with": sum(used),
        "epochs_without": sum(without),
        "saved_share": 1 - sum(used) / sum(without) if sum(without) else 0.0,
        "same_decision_share": sum(same) / len(same) if same else 0.0,
        "repeats": len(same),
    }


def main() -> None:
    import logging

    import optuna

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=Path(__file__).with_name("demo_table.json"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path,
                        help="write each searcher's within-noise share, median regret, median "
                        "epochs and repeats (JSON)")  # fmt: skip
    parser.add_argument("--choices", type=Path,
                        help="write each hptune repeat's choice after every phase (JSON), to "
                        "compare two versions of hptune on the same table")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="build a 12-run table (3 seeds) and race 3 repeats on it")  # fmt: skip
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("hptune").setLevel(logging.ERROR)
    if args.quick:
        if args.table.name == "demo_table.json":
            args.table = Path(tempfile.mkdtemp(prefix="hptune-race-")) / "quick_table.json"
        if not args.table.exists():
            build(args.table, QUICK_GRID, list(range(QUICK_SEEDS)), quick=True)
        args.repeats = min(args.repeats, 3)
    elif not args.table.exists():
        raise SystemExit(f"no table at {args.table}; build it: benchmarks/search/build_table.py")
    table = Table.load(args.table)
    if not args.quick and table.grid != GRID:
        print(f"note: {args.table} holds another grid than build_table.GRID")
    result = race(table, args.repeats)
    if args.json:
        figures = {name: score.summary() for name, score in result["scores"].items()}
        figures["pruning"] = result["pruning"]
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    if args.choices:
        args.choices.write_text(json.dumps(result["choices"], indent=1, sort_keys=True) + "\n")
    budget = result["budget"]
    n_configs = len(table.truths)
    print(f"\ntable: {n_configs} configurations x {len(table.seeds)} seeds "
          f"(effective batch {EFFECTIVE_BATCH}); best truth {table.best:.4f}, "
          f"sigma {table.sigma:.4f} (median seed std); within noise: "
          f"{sum(table.regret(json.loads(c)) <= 1.0 for c in table.truths)} of {n_configs} "
          f"configurations; the demo's starting configuration: regret "
          f"{table.regret(result['baseline']):.2f} sigma")  # fmt: skip
    print(f"budget: {budget} epochs (median of hptune, 3 seeds); peers followed to "
          f"{FOLLOW * budget}; {args.repeats} repeats each; hptune samples snapped to the grid: "
          f"{result['snapped']}\n")  # fmt: skip
    header = ["searcher", "epochs used", "regret (sigma), median", "IQR", "within noise",
              "epochs to within noise, median"]  # fmt: skip
    rows = [s.row(None if s.searcher.startswith("hptune") else FOLLOW * budget)
            for s in result["scores"].values()]  # fmt: skip
    print(markdown(header, rows))
    p = result["pruning"]
    print(f"\npruning (hptune, 3 seeds, with and without it, same repeats): the epochs and "
          f"regularization phases used {p['epochs_with']} epochs instead of "
          f"{p['epochs_without']} ({100 * p['saved_share']:.0f}% saved); same final choice in "
          f"{round(p['same_decision_share'] * p['repeats'])}/{p['repeats']} repeats")  # fmt: skip


if __name__ == "__main__":
    main()
