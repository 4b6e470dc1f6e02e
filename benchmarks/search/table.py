"""A tuning table: every configuration of a grid trained on every seed, with its per-epoch
validation curve, built from any hptune configuration (``build_table.py``) and replayed by
the searchers of ``race.py`` and the decisions of ``calibration.py``.

The file is JSON:

- ``config``: the hptune configuration the runs were trained with (as its YAML holds it) and
  ``config_dir``, the directory its relative paths are taken from (relative to the repository
  when inside it);
- ``grid``: a mapping of hyperparameter -> values (a full factorial), or a list of such
  mappings whose union is the design (a fractional design: cells outside it do not exist);
  ``fixed``: the hyperparameters the grid leaves as the configuration sets them;
- ``runs``: one entry per configuration and seed (key: canonical JSON of both), each a
  ``hptune.train.RunResult`` as hptune stores it, plus ``prefix_of`` where the run was read
  off a longer run whose schedule does not depend on its length (constant learning rate);
- ``cost``: training seconds summed over the runs trained, and wall seconds of the build.
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.yaml"
TABLES_DIR = Path(__file__).resolve().parent / "tables"
#: Hyperparameters a grid may name (``hptune.HParams`` fields).
PARAMS = ("learning_rate", "batch_size", "gradient_accumulation_steps", "epochs",
          "weight_decay", "scheduler", "warmup_ratio")  # fmt: skip
LOG_SCALE = {"learning_rate", "weight_decay", "batch_size", "gradient_accumulation_steps"}
WITHIN_NOISE = 1.0  # regret (in sigma) at or below which a configuration is "within noise"
#: A schedule that does not depend on the run's length: a shorter run is a prefix of a longer.
LENGTH_FREE = ("constant_with_warmup", 0.0)


def key(config: dict[str, Any], seed: int) -> str:
    """The table's key of one run: the configuration and the seed, canonical JSON."""
    return json.dumps({**config, "seed": seed}, sort_keys=True)


def name(config: dict[str, Any]) -> str:
    """A configuration's name in the table: canonical JSON."""
    return json.dumps(config, sort_keys=True)


def blocks(grid: dict[str, list[Any]] | list[dict[str, list[Any]]]) -> list[dict[str, list]]:
    """The factorial blocks of a grid (a mapping is one block)."""
    return [grid] if isinstance(grid, dict) else list(grid)


def configurations(grid: dict[str, list[Any]] | list[dict[str, list[Any]]]) -> list[dict]:
    """Every configuration of the design, in order, each once."""
    seen: dict[str, dict[str, Any]] = {}
    for block in blocks(grid):
        unknown = set(block) - set(PARAMS)
        if unknown:
            raise SystemExit(f"the grid names {sorted(unknown)}; a grid may name {PARAMS}")
        names = list(block)
        for values in itertools.product(*block.values()):
            config = dict(zip(names, values, strict=True))
            seen.setdefault(name(config), config)
    return list(seen.values())


def dimensions(grid: dict[str, list[Any]] | list[dict[str, list[Any]]]) -> dict[str, list]:
    """Each hyperparameter of the design and every value it takes, sorted."""
    values: dict[str, set] = {}
    for block in blocks(grid):
        for param, options in block.items():
            values.setdefault(param, set()).update(options)
    return {p: sorted(v, key=lambda x: (isinstance(x, str), x)) for p, v in values.items()}


@dataclass
class Table:
    """A built table, with its truths (the mean over seeds of each run's value) and noise unit.

    Values are oriented so that lower is better (a maximized metric is negated), so regrets
    and searchers need not know the direction.
    """

    raw: dict[str, Any]
    path: str = ""  # where it was loaded from
    seeds: list[int] = field(init=False)
    cells: list[dict[str, Any]] = field(init=False)
    truths: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.grid = self.raw["grid"]
        self.runs: dict[str, dict[str, Any]] = self.raw["runs"]
        self.dims = dimensions(self.grid)
        self.metric = self.config["objective"].get("metric", "eval_loss")
        self.sign = -1.0 if self.direction == "maximize" else 1.0
        every = configurations(self.grid)
        self.seeds = sorted({json.loads(k)["seed"] for k in self.runs})
        # A cell exists when every seed of the table has its run (a fractional design, or a
        # build stopped part-way, leaves others out).
        self.cells = [c for c in every if all(key(c, s) in self.runs for s in self.seeds)]
        if not self.cells:
            raise SystemExit("the table has no configuration trained on all its seeds")
        self.missing = len(every) - len(self.cells)
        self._values = {name(c): [self.value(c, s) for s in self.seeds] for c in self.cells}
        self.truths = {n: statistics.fmean(v) for n, v in self._values.items()}

    @classmethod
    def load(cls, path: Path) -> Table:
        raw = json.loads(path.read_text())
        if "config" not in raw:
            raise SystemExit(f"{path} records no configuration: rebuild it with build_table.py")
        return cls(raw, str(path))

    @property
    def config(self) -> dict[str, Any]:
        return self.raw["config"]

    @property
    def config_dir(self) -> Path:
        directory = Path(self.raw.get("config_dir", "examples"))
        return directory if directory.is_absolute() else ROOT / directory

    @property
    def direction(self) -> str:
        objective = self.config["objective"]
        metric = objective.get("metric", "eval_loss")
        return objective.get("direction") or ("minimize" if metric == "eval_loss" else "maximize")

    @property
    def effective_batch(self) -> int:
        training = self.config.get("training", {})
        return int(training.get("batch_size", 1) * training.get("gradient_accumulation_steps", 1))

    def hparams(self, config: dict[str, Any]) -> dict[str, Any]:
        """Every hyperparameter of a cell: the grid's values over the fixed ones."""
        return {**self.raw.get("fixed", {}), **config}

    # --- values ----------------------------------------------------------------------------

    def curve(self, config: dict[str, Any], seed: int) -> tuple[list[float], bool]:
        """A run's metric per epoch (lower is better), and whether it diverged."""
        run = self.runs[key(config, seed)]
        field_ = "eval_loss" if self.metric == "eval_loss" else "score"
        values = [self.sign * e[field_] if e[field_] is not None else math.nan
                  for e in run["epochs"]]  # fmt: skip
        return values, bool(run["diverged"])

    def value(self, config: dict[str, Any], seed: int) -> float:
        """The run's value (lower is better): its best epoch, by hptune's one rule (the
        checkpoint kept, restored and exported with ``load_best_model_at_end``, so what a
        user retraining the choice gets on validation); +inf when it diverged or no epoch
        is finite."""
        curve, diverged = self.curve(config, seed)
        finite = [v for v in curve if math.isfinite(v)]
        return min(finite) if finite and not diverged else math.inf

    def truth(self, config: dict[str, Any], seeds: list[int] | None = None) -> float:
        if seeds is None:
            return self.truths[name(config)]
        return statistics.fmean(self.value(config, s) for s in seeds)

    @property
    def best(self) -> float:
        return min(self.truths.values())

    @property
    def best_cell(self) -> dict[str, Any]:
        return min(self.cells, key=lambda c: self.truths[name(c)])

    @property
    def sigma(self) -> float:
        """The noise unit: the median over configurations of the seed standard deviation."""
        finite = [v for v in self._values.values() if all(math.isfinite(x) for x in v)]
        return statistics.median(statistics.stdev(v) for v in finite)

    def regret(self, config: dict[str, Any] | None) -> float:
        if config is None:
            return math.inf
        return (self.truths[name(config)] - self.best) / self.sigma

    def held_out(self, seeds: list[int]) -> HeldOut:
        """The truth of every configuration on ``seeds`` only (those a searcher never saw)."""
        return HeldOut(self, {name(c): self.truth(c, seeds) for c in self.cells})

    def snap(self, values: dict[str, Any]) -> dict[str, Any]:
        """The existing cell nearest to ``values`` (log scale for rates and sizes; each
        dimension's distance in steps of its grid, so no dimension dominates)."""

        def position(param: str, value: Any) -> float:
            options = self.dims[param]
            if isinstance(value, str) or isinstance(options[0], str):
                return math.nan  # a category: equal or not (below)
            scale = (lambda x: math.log(max(x, 1e-12))) if param in LOG_SCALE else float
            points = [scale(o) for o in options]
            x = scale(value)
            if x <= points[0]:
                return 0.0
            for i in range(len(points) - 1):
                if x <= points[i + 1]:
                    return i + (x - points[i]) / (points[i + 1] - points[i])
            return float(len(points) - 1)

        wanted = {p: position(p, values[p]) for p in self.dims if p in values}

        def distance(cell: dict[str, Any]) -> tuple[float, str]:
            total = 0.0
            for p, x in wanted.items():
                if math.isnan(x):  # another category weighs more than any step of a number
                    total += 0.0 if cell[p] == values[p] else 10.0
                else:
                    total += (x - position(p, cell[p])) ** 2
            return total, name(cell)

        return min(self.cells, key=distance)

    # --- difficulty ------------------------------------------------------------------------

    def within_noise(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if self.regret(c) <= WITHIN_NOISE]

    def start(self) -> dict[str, Any]:
        """The configuration's starting point (hptune's baseline), snapped to the grid."""
        return self.snap(self.raw.get("start", self.raw.get("fixed", {})))


def complete_tables() -> list[Path]:
    """The suite's tables whose every cell is built; a table still building is named and
    left out (``build_table.py --suite`` goes on where it stopped)."""
    paths = []
    for path in sorted(TABLES_DIR.glob("*.json")):
        try:
            missing = Table.load(path).missing
        except SystemExit:  # not one cell on every seed yet
            missing = -1
        if missing:
            print(f"{path.name}: still building, left out (build_table.py --suite finishes it)")
        else:
            paths.append(path)
    if not paths:
        raise SystemExit("no finished tables: build them with build_table.py --suite")
    return paths


@dataclass
class HeldOut:
    """Regrets measured on held-out seeds: the truth a searcher is scored on."""

    table: Table
    truths: dict[str, float]

    def regret(self, config: dict[str, Any] | None) -> float:
        if config is None:
            return math.inf
        best = min(self.truths.values())
        return (self.truths[name(config)] - best) / self.table.sigma
