"""Do the backends train the same thing? The demo's baseline (LoRA, batch 4 x 8, warmup,
weight decay, dropout) trained on each seed by hptune's loop, a ``transformers.Trainer`` and
TRL's ``SFTTrainer`` (on the raw records, TRL's data path; every backend trains TRL's tokens,
``data.tokenization: trl``): each epoch's validation loss per seed, the largest relative
difference between backends, and the spread between seeds it is to be compared with.

    .venv/bin/python benchmarks/backend_parity.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("accelerate", "trainer", "sft")


def main() -> None:
    from hptune.config import load_config
    from hptune.hparams import HParams
    from hptune.train import make_runner

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 examples, 1 epoch, 2 seeds")
    args = parser.parse_args()
    raw = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    raw["training"]["checkpoints"] = False
    raw["objective"]["eval_samples"] = 1
    raw["data"]["tokenization"] = "trl"  # the tokens SFTTrainer trains from the raw records
    seeds, epochs = ([0, 1], 1) if args.quick else ([0, 1, 2], 2)
    if args.quick:
        raw["training"]["max_train_examples"] = 128
    out = Path(tempfile.mkdtemp(prefix="hptune-bench-parity-"))
    raw["output_dir"] = str(out / "out")
    hp = HParams(learning_rate=1e-2, batch_size=4, gradient_accumulation_steps=8, epochs=epochs,
                 warmup_ratio=0.1, weight_decay=0.05, scheduler="cosine")  # fmt: skip
    curves: dict[str, dict[int, list[float]]] = {}
    seconds: dict[str, float] = {}
    for backend in BACKENDS:
        raw["training"]["backend"] = backend
        path = out / f"{backend}.yaml"
        path.write_text(yaml.safe_dump(raw))
        runner = make_runner(load_config(path))
        start = time.perf_counter()
        curves[backend] = {s: [e.eval_loss for e in runner.train(hp, s).epochs] for s in seeds}
        seconds[backend] = time.perf_counter() - start
    print(
        f"demo baseline ({hp.batch_size} x {hp.gradient_accumulation_steps}, lr "
        f"{hp.learning_rate:g}, cosine, warmup {hp.warmup_ratio:g}, weight decay "
        f"{hp.weight_decay:g}, LoRA dropout 0.05): validation loss per seed and epoch"
    )
    print(f"{'seed':>4} {'epoch':>5} " + " ".join(f"{b:>12}" for b in BACKENDS))
    worst = 0.0
    for seed in seeds:
        for index in range(epochs):
            values = [curves[b][seed][index] for b in BACKENDS]
            worst = max(worst, (max(values) - min(values)) / min(values))
            print(f"{seed:>4} {index + 1:>5} " + " ".join(f"{v:>12.7f}" for v in values))
    finals = [curves["accelerate"][s][-1] for s in seeds]
    spread = (max(finals) - min(finals)) / min(finals)
    print(f"largest relative difference between backends: {worst:.2e}")
    print(f"relative spread of the last epoch between seeds: {spread:.2e}")
    print("seconds for all seeds: " + ", ".join(f"{b} {seconds[b]:.1f}" for b in BACKENDS))


if __name__ == "__main__":
    main()
