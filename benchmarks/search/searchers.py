"""The searchers hptune is raced against, each replayed on a table (``table.py``): they look
their runs up instead of training, and count what they use in seed-epochs (one epoch of one
seed's run), as hptune's budget does.

Each returns a trajectory: (seed-epochs used, its current choice) each time the choice
changes, so one search followed to the largest budget is read at every smaller one.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from table import Table, name

#: (seed-epochs used so far, the searcher's current choice) each time its choice changes.
Trajectory = list[tuple[int, dict[str, Any]]]
#: hptune's phase order, and the hyperparameters each phase decides.
PHASE_PARAMS = {
    "learning_rate": ("learning_rate",),
    "batch_size": ("batch_size", "gradient_accumulation_steps"),
    "epochs": ("epochs",),
    "regularization": ("weight_decay", "scheduler", "warmup_ratio"),
}


def seed_splits(table: Table, repeats: int) -> list[tuple[list[int], list[int]]]:
    """``repeats`` splits of the table's seeds into the seen half (in the order a searcher
    uses them) and the held-out rest, distinct while there are enough (C(8, 4) = 70)."""
    seeds = table.seeds
    n_seen = max(1, len(seeds) // 2)
    combos = list(itertools.combinations(seeds, n_seen))
    random.Random(0).shuffle(combos)
    splits = []
    for repeat in range(repeats):
        seen = list(combos[repeat % len(combos)])
        random.Random(repeat).shuffle(seen)
        splits.append((seen, [s for s in seeds if s not in seen]))
    return splits


def choice_at(trajectory: Trajectory, budget: float | None) -> dict[str, Any] | None:
    """The searcher's choice once it had used ``budget`` seed-epochs (None: at its end)."""
    chosen = None
    for used, config in trajectory:
        if budget is None or used <= budget:
            chosen = config
    return chosen


@dataclass
class Search:
    """A finished search: its trajectory and what it used."""

    trajectory: Trajectory = field(default_factory=list)
    used: int = 0

    @property
    def choice(self) -> dict[str, Any] | None:
        return self.trajectory[-1][1] if self.trajectory else None


# --- the ablation: hptune's order without its statistics -----------------------------------


#: The learning-rate factors hptune's regularization phase tries each candidate at (v2).
RATE_FACTORS = (0.5, 1.0, 2.0)


def regularization_candidates(table: Table) -> list[dict[str, Any]]:
    """The distinct combinations of the regularization hyperparameters the table varies
    (weight decay, scheduler, warmup ratio; only those it varies) among its cells, in the
    order of the cells: the candidates of hptune's regularization phase in the race."""
    varied = [p for p in PHASE_PARAMS["regularization"] if p in table.dims]
    combos = {name({p: c[p] for p in varied}): {p: c[p] for p in varied} for c in table.cells}
    return list(combos.values()) if varied else []


def _rates(table: Table, rate: float) -> list[float]:
    """The incoming ``rate`` times each of `RATE_FACTORS`, leaving out a product outside the
    table's learning-rate range (not snapped back onto another grid value)."""
    grid = table.dims.get("learning_rate")
    if not grid:
        return [rate]
    low, high = min(grid) * (1 - 1e-9), max(grid) * (1 + 1e-9)
    return [rate * f for f in RATE_FACTORS if low <= rate * f <= high]


def coordinate_search(table: Table, seeds: list[int], limit: int | None) -> Search:
    """hptune's phase order with no statistics: from the starting configuration, each phase
    tries every grid value of its hyperparameters with the others held, on the same
    ``seeds``, and keeps the best mean; no tests, no racing, no pruning. The regularization
    phase, as hptune's (v2): every existing combination of its hyperparameters
    (`regularization_candidates`) at the incoming learning rate x 0.5, 1 and 2 (snapped to
    the grid; a rate outside the grid's range is left out), the best mean fixing the
    learning rate too. A configuration is trained once (a repeat is not counted again).
    Stops before a trial that would pass ``limit``."""
    search = Search()
    trained: dict[str, float] = {}
    current = table.start()

    def mean(cell: dict[str, Any]) -> float | None:
        if name(cell) not in trained:
            cost = cell["epochs"] * len(seeds) if "epochs" in cell else len(seeds)
            if limit is not None and search.used + cost > limit:
                return None
            search.used += cost
            trained[name(cell)] = statistics.fmean(table.value(cell, s) for s in seeds)
        return trained[name(cell)]

    if mean(current) is None:
        return search
    search.trajectory.append((search.used, current))
    for phase in PHASE_PARAMS:
        for cell in _phase_cells(table, phase, current):
            value = mean(cell)
            if value is None:
                return search
            if value < trained[name(current)]:
                current = cell
                search.trajectory.append((search.used, current))
    return search


def _phase_cells(table: Table, phase: str, incoming: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells the coordinate search tries in ``phase`` from ``incoming``, each once."""
    varied = [p for p in PHASE_PARAMS[phase] if p in table.dims]
    if not varied:
        return []
    if phase == "regularization":
        rate = incoming.get("learning_rate")
        rates = _rates(table, rate) if rate is not None else [None]
        wanted = [{**incoming, **combo, **({} if r is None else {"learning_rate": r})}
                  for combo in regularization_candidates(table) for r in rates]  # fmt: skip
    else:
        options = itertools.product(*(table.dims[p] for p in varied))
        wanted = [{**incoming, **dict(zip(varied, o, strict=True))} for o in options]
    cells = (table.snap(w) for w in wanted)
    return list({name(c): c for c in cells}.values())


def exhaustive(table: Table, seeds: list[int]) -> Search:
    """Every cell on every seen seed (the ceiling: it ignores the budget)."""
    best = min(table.cells, key=lambda c: (table.truth(c, seeds), name(c)))
    used = sum(c.get("epochs", 1) * len(seeds) for c in table.cells)
    return Search([(used, best)], used)


def starting_point(table: Table) -> Search:
    """The configuration's starting point, untuned."""
    return Search([(0, table.start())], 0)


# --- the peers: Optuna loops on the table ---------------------------------------------------

#: Proposes (configuration, seed) for a trial.
Suggest = Callable[[Any], tuple[dict[str, Any], int]]


def optuna_search(table: Table, limit: int, sampler: Any, pruner: Any, suggest: Suggest,
                  *, reports: bool, study_name: str = "race",
                  best_epoch: bool = True) -> Search:  # fmt: skip
    """A study.ask/tell loop on the table until ``limit`` seed-epochs are used.

    A finished trial is told its best epoch (``best_epoch``: the loop evaluates every epoch
    and keeps the best checkpoint, the value rule every searcher is scored by), or its last
    (a loop that evaluates once, after training).

    With ``reports`` the validation metric is reported after each epoch and the pruner may
    stop the trial; a diverged run reports NaN from its divergence on. A trial the budget
    cuts is not scored.
    """
    import optuna

    # A fixed study name: Hyperband assigns brackets by a hash of it (Optuna's docs ask for
    # one to make its pruning reproducible); an unnamed study gets a random one.
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner,
                                study_name=study_name)  # fmt: skip
    search, best = Search(), math.inf
    while search.used < limit:
        trial = study.ask()
        config, seed = suggest(trial)
        curve, diverged = table.curve(config, seed)
        epochs = config.get("epochs", len(curve))
        curve = (curve + [math.nan] * epochs)[:epochs]  # NaN once diverged
        state = "complete"
        for epoch, value in enumerate(curve, 1):
            if search.used >= limit:
                state = "cut"
                break
            search.used += 1
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
            value = min(curve) if best_epoch else curve[-1]
            study.tell(trial, value)
            if value < best:
                best = value
                search.trajectory.append((search.used, config))
    return search


def joint_space(table: Table, seed: int) -> Suggest:
    """Every grid hyperparameter as a categorical, snapped to the nearest existing cell; one
    fixed training seed for the whole search (as a hand-written loop has)."""

    def suggest(trial: Any) -> tuple[dict[str, Any], int]:
        return table.snap({p: trial.suggest_categorical(p, v) for p, v in table.dims.items()}), seed

    return suggest


def longest_space(table: Table, seed: int) -> Suggest:
    """`joint_space` with ``epochs`` fixed at the table's largest count: every run trains
    the longest and keeps its best checkpoint, so the epochs are not searched."""
    most = max(table.dims["epochs"]) if "epochs" in table.dims else None
    searched = {p: v for p, v in table.dims.items() if p != "epochs"}

    def suggest(trial: Any) -> tuple[dict[str, Any], int]:
        values = {p: trial.suggest_categorical(p, v) for p, v in searched.items()}
        if most is not None:
            values["epochs"] = most
        return table.snap(values), seed

    return suggest


def _log_map(value: float, low: float, high: float, to: list[float]) -> float:
    """``value`` in [low, high] mapped onto [min(to), max(to)], both in log space."""
    share = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    lo, hi = math.log(min(to)), math.log(max(to))
    return math.exp(lo + share * (hi - lo))


def hf_default_space(table: Table, seen: list[int]) -> Suggest:
    """transformers' ``default_hp_space_optuna`` (learning rate 1e-6..1e-4 log, epochs 1..5,
    seed 1..40, batch 4..64) with the Trainer's defaults for the rest. Its rate range is
    mapped onto the table's range in log space (a tiny model's rates are another scale), its
    epochs onto the table's epoch range, so every cell of those is reachable."""
    from transformers.trainer_utils import default_hp_space_optuna
    from transformers.training_args import TrainingArguments

    defaults = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="hptune-race-hf-"))
    dims = table.dims

    def suggest(trial: Any) -> tuple[dict[str, Any], int]:
        space = default_hp_space_optuna(trial)
        values: dict[str, Any] = {
            "batch_size": space["per_device_train_batch_size"],
            "weight_decay": max(defaults.weight_decay, 1e-12),  # 0.0: log scale snaps it up
            "scheduler": str(getattr(defaults.lr_scheduler_type, "value", "linear")),
            # transformers 5 folds warmup_ratio into warmup_steps (a float below 1 is a ratio)
            "warmup_ratio": float(getattr(defaults, "warmup_ratio", 0.0) or defaults.warmup_steps),
        }
        if "learning_rate" in dims:
            values["learning_rate"] = _log_map(space["learning_rate"], 1e-6, 1e-4,
                                               dims["learning_rate"])  # fmt: skip
        if "epochs" in dims:
            low, high = min(dims["epochs"]), max(dims["epochs"])
            values["epochs"] = low + (space["num_train_epochs"] - 1) / 4 * (high - low)
        seed = seen[space["seed"] % len(seen)]  # the seed is searched too
        return table.snap(values), seed

    return suggest


LONGEST = "random search (longest epochs, best checkpoint)"
PEERS = ["HF hyperparameter_search (defaults)", "Optuna TPE + MedianPruner", "random search",
         LONGEST, "Hyperband"]  # fmt: skip


def run_peer(peer: str, table: Table, limit: int, repeat: int, seen: list[int]) -> Search:
    """One peer's search, seeing only ``seen`` seeds, until ``limit`` seed-epochs."""
    import optuna

    seed = seen[0]
    tpe = optuna.samplers.TPESampler(seed=repeat)
    randomly = optuna.samplers.RandomSampler(seed=repeat)
    if peer == "HF hyperparameter_search (defaults)":
        # eval_strategy="no" by default: one evaluation after training, nothing to prune on.
        return optuna_search(table, limit, tpe, optuna.pruners.MedianPruner(),
                             hf_default_space(table, seen), reports=False,
                             best_epoch=False)  # fmt: skip
    if peer == "Optuna TPE + MedianPruner":
        return optuna_search(table, limit, tpe, optuna.pruners.MedianPruner(),
                             joint_space(table, seed), reports=True)  # fmt: skip
    if peer == "random search":
        return optuna_search(table, limit, randomly, optuna.pruners.NopPruner(),
                             joint_space(table, seed), reports=False)  # fmt: skip
    if peer == LONGEST:
        # Each run told its best epoch (min over its curve), its choice the longest cell.
        return optuna_search(table, limit, randomly, optuna.pruners.NopPruner(),
                             longest_space(table, seed), reports=False,
                             best_epoch=True)  # fmt: skip
    if peer == "Hyperband":
        most = max(table.dims.get("epochs", [1]))
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=most,
                                                reduction_factor=3)  # fmt: skip
        return optuna_search(table, limit, randomly, pruner, joint_space(table, seed),
                             reports=True, study_name=f"hyperband-{repeat}")  # fmt: skip
    raise ValueError(f"unknown peer {peer=}")
