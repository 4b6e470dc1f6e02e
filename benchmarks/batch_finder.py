"""How many probe runs, probe training steps and out-of-memory errors each way of finding the
largest batch that fits costs, for LoRA on a Llama-7B-shaped model under several GPU memory
limits, when the memory estimate is exact, 20% low or 20% high.

    .venv/bin/python benchmarks/batch_finder.py [--quick]

The "true" peak memory of a batch is hptune's memory model for the architecture times
(1 + error): a GPU stand-in, since this machine has none (benchmarks/memory_model_check.py
measures the model against a real GPU). Compared:

* hptune, model only: the memory-bounded sampler proposes the largest candidate predicted to
  fit (90% safety margin) and steps down after an OOM; the first trial that fits is a real
  trial, not a probe.
* hptune, calibrated (what the batch phase does on a GPU): one probe step each at batch 1
  and 2 fits the model to measurement, then as above.
* Lightning-style (``Tuner.scale_batch_size``): from 2, double while 3 probe steps fit, then
  (binsearch) bisect between the last fit and the first OOM.
* Accelerate-style (``find_executable_batch_size``): from 128, halve on every OOM.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from hptune.train.memory import MemoryModel

CANDIDATES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
GB = 2**30


@dataclass
class Search:
    found: int | None
    probes: int  # probe runs (attempts that are not the real training)
    probe_steps: int  # training steps spent probing
    ooms: int


def hptune_model_only(fits: Callable[[int], bool], predict: Callable[[int], float],
                      limit: float) -> Search:  # fmt: skip
    ooms = 0
    candidates = [b for b in CANDIDATES if predict(b) <= 0.9 * limit]
    for b in sorted(candidates, reverse=True):
        if fits(b):
            return Search(b, 0, 0, ooms)  # this trial trains for real
        ooms += 1  # recorded; no later proposal reaches b or above
    return Search(None, 0, 0, ooms)


def hptune_calibrated(fits: Callable[[int], bool], truth: Callable[[int], float],
                      limit: float) -> Search:  # fmt: skip
    per_example = truth(2) - truth(1)  # two measured probe steps
    fixed = truth(1) - per_example
    found = hptune_model_only(fits, lambda b: fixed + b * per_example, limit)
    return Search(found.found, 2, 2, found.ooms)


def lightning_binsearch(fits: Callable[[int], bool], steps: int = 3,
                        max_trials: int = 25) -> Search:  # fmt: skip
    batch, probes, ooms, low, high = 2, 0, 0, None, None
    while probes < max_trials:
        probes += 1
        if fits(batch):
            low = batch
            if high is None:
                batch *= 2
            elif high - low <= 1:
                break
            else:
                batch = (low + high) // 2
        else:
            ooms += 1
            high = batch
            if low is None:
                batch = max(batch // 2, 1)
                if batch == 1 and not fits(1):
                    return Search(None, probes, probes * steps, ooms)
            elif high - low <= 1:
                break
            else:
                batch = (low + high) // 2
    return Search(low, probes, probes * steps, ooms)


def accelerate_halving(fits: Callable[[int], bool], start: int = 128) -> Search:
    batch, ooms = start, 0
    while batch >= 1:
        if fits(batch):
            return Search(batch, ooms, ooms, ooms)  # each OOM is a failed first step
        ooms += 1
        batch //= 2
    return Search(None, ooms, ooms, ooms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one limit, one error")
    args = parser.parse_args()
    model = MemoryModel.from_architecture(
        n_params=6_738_415_616, n_trainable=19_988_480, hidden_size=4096,
        intermediate_size=11008, n_layers=32, n_heads=32, vocab_size=32000,
        sequence_length=512, weight_bytes=2.0, activation_bytes=2,
    )  # fmt: skip
    limits = [24, 40, 80] if not args.quick else [40]
    errors = [-0.2, 0.0, 0.2] if not args.quick else [0.2]
    print("LoRA r=8 on a Llama-7B shape, sequence 512, bf16; probes / probe steps / OOMs -> batch")
    names = ["hptune (model)", "hptune (calibrated)", "Lightning binsearch", "Accelerate halving"]
    print(f"{'GPU':>5} {'error':>6} {'largest':>8}" + "".join(f"  {n:>20}" for n in names))
    for limit_gb in limits:
        limit = limit_gb * GB
        for error in errors:

            def truth(b: int, e: float = error) -> float:
                return model.predict(b) * (1 + e)

            def fits(b: int, lim: float = limit) -> bool:
                return truth(b) <= lim

            largest = max((b for b in range(1, 1025) if fits(b)), default=None)
            results = [
                hptune_model_only(fits, model.predict, limit),
                hptune_calibrated(fits, truth, limit),
                lightning_binsearch(fits),
                accelerate_halving(fits),
            ]
            cells = [f"{r.probes}/{r.probe_steps}/{r.ooms} -> {r.found}" for r in results]
            row = f"{limit_gb:>4}G {error:>+6.0%} {largest!s:>8}"
            print(row + "".join(f"  {c:>20}" for c in cells))


if __name__ == "__main__":
    main()
