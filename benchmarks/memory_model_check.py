"""Check the memory model against measured peak GPU memory (needs CUDA).

For a few batch sizes, one training step (forward, backward, AdamW step) of the configured
model on its longest training examples; prints the model's prediction before and after
calibration (on batches 1 and 2), the measured peak and the relative error.

    .venv/bin/python benchmarks/memory_model_check.py [CONFIG] [--batches 1 2 4 8 16]

Without CUDA it says so and exits 0: host memory has no comparable peak counter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEMO))
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the memory model can only be checked on a GPU")
        return 0
    from hptune.config import load_config
    from hptune.train import Runner
    from hptune.train.memory import MemoryModel
    from hptune.train.model import resolved_dtype

    config = load_config(args.config)
    runner = Runner(config)
    estimate = MemoryModel.for_model(
        config.model,
        config.method,
        sequence_length=runner.data.max_train_length,
        gradient_checkpointing=config.training.gradient_checkpointing,
        dtype=resolved_dtype(config.model),
    )
    measured = runner.probe_memory(args.batches)
    calibrated = estimate.calibrated({b: measured[b] for b in (1, 2) if b in measured})
    print(f"{torch.cuda.get_device_name(0)}; sequence length {runner.data.max_train_length}")
    columns = f"{'measured MB':>13}{'model MB':>10}{'error':>8}{'calibrated MB':>15}{'error':>8}"
    print(f"{'batch':>6}{columns}")
    for batch in args.batches:
        if batch not in measured:
            print(f"{batch:>6}  out of memory")
            continue
        peak = measured[batch]
        raw, fitted = estimate.predict(batch), calibrated.predict(batch)
        print(f"{batch:>6}{peak / 2**20:>13.1f}{raw / 2**20:>10.1f}{raw / peak - 1:>8.0%}"
              f"{fitted / 2**20:>15.1f}{fitted / peak - 1:>8.0%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
