"""The plan on a real shape: the memory model's prediction beside the host memory a training
step actually peaks at on this CPU, and the throughput estimate beside the measured rate.

    .venv/bin/python benchmarks/finqa/memory.py                      # SmolLM2, batches 4 and 16
    .venv/bin/python benchmarks/finqa/memory.py --config C.yaml --batches 2 8 --steps 4

For each batch a fresh process loads the configured model as a trial does (the GGUF file
dequantized to float32 for SmolLM2), resets the kernel's peak-RSS counter (``clear_refs``),
then runs ``--steps`` training steps (forward, backward, AdamW) on that many of the longest
training examples, as the GPU probe does. The peak is the counter's high-water mark less the
process's memory before the model loaded (Python, torch, the tokenized data): the weights plus
the step, which is what the memory model predicts. Steps after the first are timed.

hptune has no throughput estimate for a CPU (it knows GPUs' speeds, not this machine's). To set
the estimate's arithmetic beside a measurement, this script measures the CPU's float32 matmul
speed and hands it to the estimate in place of a GPU's TFLOPS, at the padded length of the
timed batches.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "smollm2_finqa.yaml"


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _runner(config_path: Path) -> Any:
    from hptune.config import load_config
    from hptune.train.backends import make_runner

    return make_runner(load_config(config_path))


def _child(config_path: Path, batch_size: int, steps: int) -> dict[str, Any]:
    """One batch size in this process: the step's peak RSS and its seconds."""
    import gc

    import torch

    from hptune.train.model import load_model

    runner = _runner(config_path)
    collate = runner.collator()
    lengths = [len(ids) for ids in runner.data.train["input_ids"]]
    longest = sorted(range(len(lengths)), key=lambda i: -lengths[i])[:batch_size]
    batch = dict(collate([runner.data.train[i] for i in longest]))
    gc.collect()
    before = _status_kb("VmRSS")
    model = load_model(runner.config.model, runner.config.method)
    model.train()
    gc.collect()
    loaded = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak-RSS counter starts again here
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-9)
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    return {
        "batch_size": batch_size,
        "tokens": int(batch["input_ids"].shape[1]),
        "weights_gib": (loaded - before) / 2**20,
        "peak_gib": (_status_kb("VmHWM") - before) / 2**20,
        "step_seconds": seconds,
    }


def _cpu_tflops() -> float:
    """This CPU's float32 matmul speed with torch's threads, in TFLOPS (best of 5)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * 1024**3 / best / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=EXAMPLE)
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.config, args.child, args.steps)))
        return
    from hptune.train.memory import MemoryModel
    from hptune.train.target import MODEL_FLOPS_UTILIZATION, Target, memory_model

    runner = _runner(args.config)
    model: MemoryModel = memory_model(runner.config, runner)
    tflops = _cpu_tflops()
    cpu = Target("cpu", "this CPU", None, False, "measured", tflops)
    print(
        f"model: {args.config.name}, {model.parameters:,} parameters; "
        f"float32 matmul on this CPU: {tflops * 1e3:.0f} GFLOPS "
        f"({os.environ.get('OMP_NUM_THREADS', 'all')} threads)"
    )
    print(
        "| batch | predicted GiB | measured peak GiB | weights GiB (measured / predicted) "
        "| step s | examples/s measured | estimated |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for batch_size in args.batches:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--config",
                str(args.config),
                "--steps",
                str(args.steps),
                "--child",
                str(batch_size),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()[-1]
        row = json.loads(out)
        timed = row["step_seconds"][1:] or row["step_seconds"]
        step = sum(timed) / len(timed)
        estimate = cpu.examples_per_second(
            parameters=model.parameters,
            full=runner.config.method.type == "full",
            checkpointing=runner.config.training.gradient_checkpointing,
            tokens_per_example=row["tokens"],
        )
        print(
            f"| {batch_size} | {model.predict(batch_size) / 2**30:.3f} | {row['peak_gib']:.3f} "
            f"| {row['weights_gib']:.3f} / {model.weights / 2**30:.3f} | {step:.2f} "
            f"| {batch_size / step:.2f} | {estimate:.2f} |"
        )
    print(
        f"estimated: the plan's arithmetic at {MODEL_FLOPS_UTILIZATION:.0%} of the measured "
        f"matmul speed, {row['tokens']} tokens an example (the timed batches' padded length)"
    )


if __name__ == "__main__":
    main()
