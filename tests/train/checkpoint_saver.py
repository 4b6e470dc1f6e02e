"""Saves epoch checkpoints in a loop until killed (for the kill test of test_checkpoints).

    python -m tests.train.checkpoint_saver RUN_DIR

The model is a stand-in whose ``save_pretrained`` writes a 2 MB safetensors file filled with
the epoch number (so a reader can tell a whole file from a torn one); the saving, renaming and
retention are hptune's own. Numbering goes on from the newest checkpoint in RUN_DIR.
"""

import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from hptune.train.checkpoints import latest_checkpoint, retain_best_and_last, save_checkpoint


class StandIn:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def save_pretrained(self, path: Path, safe_serialization: bool = True) -> None:
        assert safe_serialization
        path.mkdir(parents=True)
        save_file({"weight": np.full(500_000, self.epoch, np.float32)},
                  str(path / "adapter_model.safetensors"))  # fmt: skip
        (path / "adapter_config.json").write_text('{"r": 8}')


def main() -> None:
    run_dir = Path(sys.argv[1])
    latest = latest_checkpoint(run_dir)
    epoch = int(latest.name.removeprefix("epoch-")) + 1 if latest else 1
    print("saving", flush=True)
    while True:
        # the metric rises and falls, so retention deletes as well as keeps
        save_checkpoint(StandIn(epoch), run_dir, epoch, {"eval_loss": float(epoch % 7)})
        retain_best_and_last(run_dir, "eval_loss", "minimize")
        epoch += 1


if __name__ == "__main__":
    main()
