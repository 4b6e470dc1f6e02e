"""Run under 2 processes (torchrun): train one run data-parallel, with process 0's epoch
callback asking to stop after epoch 2 and, optionally, a NaN loss on process 1 only.
Each process writes what it trained to OUT/rank-R.json."""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState

from hptune.config import load_config
from hptune.hparams import HParams
from hptune.train import Runner

config_path, out, nan_on_rank_1 = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "nan"
state = PartialState(cpu=True)


class Faulty(Runner):
    def step_loss(self, model, batch, epoch):
        loss = super().step_loss(model, batch, epoch)
        if nan_on_rank_1 and state.process_index == 1 and epoch == 2:
            return loss * torch.tensor(float("nan"))
        return loss


runner = Faulty(load_config(config_path))
hp = HParams(5e-3, 8, 1, 4, 0.05, 0.01)


def stop_after_epoch_2(seed, metrics):
    return metrics.epoch < 2


on_epoch = stop_after_epoch_2 if state.is_main_process else None
result = runner.train(hp, seed=0, on_epoch=on_epoch)
(out / f"rank-{state.process_index}.json").write_text(json.dumps(result.to_dict()))
