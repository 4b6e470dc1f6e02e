"""Trial throughput of hptune's worker loop with 1, 2, 4 and 8 worker processes, on
PostgreSQL, a JournalStorage file and SQLite, with a trivial objective (no training), so the
figures are the cost of coordination alone: claiming under the queue lock, sampling, heartbeats
and telling results.

    .venv/bin/python benchmarks/worker_throughput.py [--trials 120] [--workers 1 2 4 8]
        [--postgres URL] [--quick]

Without --postgres, a throwaway server is started on loopback (tests/postgres.py; Debian's
postgresql package). SQLite is measured for comparison only: hptune refuses a second worker
on one SQLite file, because its writers lock the whole file.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.postgres, when run from anywhere


def _make_config(storage: str, name: str) -> Any:
    from hptune.config import config_from_dict

    return config_from_dict(
        {
            "name": name,
            "model": {"path": "demo://model"},
            "data": {"train": "demo://data/train.jsonl", "validation": "x.jsonl"},
            "storage": storage,
            "heartbeat_seconds": 5,
        }
    )


def _phase(n_trials: int) -> Any:
    from hptune.phases import Decision, Phase

    class Trivial(Phase):
        name = "trivial"

        def n_trials(self) -> int:
            return n_trials

        def suggest(self, trial: Any, base: Any) -> Any:
            trial.suggest_float("x", -1.0, 1.0)
            return base

        def decide(self, outcomes: Any, base: Any, direction: str) -> Decision:
            return Decision(self.name, {}, None, "done", f"{len(outcomes)} trials")

    return Trivial()


def _worker(storage: str, name: str, n_trials: int, seconds: float, start: Any) -> None:
    import optuna

    from hptune.hparams import HParams
    from hptune.pipeline import work_through_queue
    from hptune.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = _make_config(storage, name)
    backend = open_storage(config)
    phase = _phase(n_trials)
    sampler = optuna.samplers.RandomSampler()
    study = optuna.create_study(storage=backend, study_name=f"{name}.trivial", sampler=sampler,
                                load_if_exists=True)  # fmt: skip
    base = HParams(1e-3, 4, 1, 1, 0.05, 0.01)

    def objective(trial: Any) -> float:
        time.sleep(seconds)  # a stand-in for training (0: coordination alone)
        return float(trial.params["x"] ** 2)

    start.wait()
    work_through_queue(config, backend, study, phase, base, objective)


def measure(
    storage: str, name: str, workers: int, n_trials: int, seconds: float = 0.0
) -> float | None:
    """Trials per second with ``workers`` processes working through one study; None when a
    worker failed (SQLite under several writers: "database is locked")."""
    import optuna

    from hptune.storage import open_storage

    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [context.Process(target=_worker, args=(storage, name, n_trials, seconds, start))
                 for _ in range(workers)]  # fmt: skip
    for p in processes:
        p.start()
    time.sleep(3.0 + 0.5 * workers)  # let every process import and open the storage
    began = time.perf_counter()
    start.set()
    for p in processes:
        p.join()
    if any(p.exitcode != 0 for p in processes):
        return None
    elapsed = time.perf_counter() - began
    study = optuna.load_study(study_name=f"{name}.trivial",
                              storage=open_storage(_make_config(storage, name)))  # fmt: skip
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    if len(complete) != n_trials:
        raise RuntimeError(f"{len(complete)} trials completed, expected exactly {n_trials}")
    return n_trials / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--postgres", help="a postgresql:// URL (default: start a local server)")
    parser.add_argument("--trial-seconds", type=float, default=0.0,
                        help="each trial sleeps this long, standing in for training")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="10 trials, 1 and 2 workers")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.workers = 10, [1, 2]
    workdir = Path(tempfile.mkdtemp(prefix="hptune-bench-workers-"))
    server = None
    postgres = args.postgres
    if postgres is None:
        from tests.postgres import PostgresServer

        server = PostgresServer()
        server.__enter__()
    try:
        rows = []
        for backend in ("postgresql", "journal", "sqlite"):
            rates = []
            for n in args.workers:
                name = f"b{backend[:2]}{n}"
                if backend == "postgresql":
                    storage = server.create_database(name) if server else postgres
                elif backend == "journal":
                    storage = f"journal://{workdir / (name + '.log')}"
                else:
                    storage = f"sqlite:///{workdir / (name + '.db')}"
                rates.append(measure(storage, name, n, args.trials, args.trial_seconds))
            rows.append((backend, rates))
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    what = f"{args.trial_seconds:g} s each" if args.trial_seconds else "a trivial objective"
    print(f"{args.trials} trials ({what}), trials/s (ratio to 1 worker):")
    print(f"{'storage':<12}" + "".join(f"{f'{n} worker(s)':>22}" for n in args.workers))
    for backend, rates in rows:
        one = rates[0]
        cells = "".join(
            f"{'failed':>22}" if r is None else f"{r:>12.1f} ({r / one:4.2f}x)" if one else
            f"{r:>22.1f}" for r in rates
        )  # fmt: skip
        print(f"{backend:<12}{cells}")


if __name__ == "__main__":
    main()
