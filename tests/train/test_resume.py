"""A run interrupted after an epoch checkpoint goes on from it and ends exactly as the same
run uninterrupted: weights, optimizer, scheduler, data order and random state restored."""

from pathlib import Path

import pytest

from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.train import Runner


class Stop(Exception):
    pass


def _runner(tmp_path: Path, method: str) -> Runner:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["method"] = {"type": method}
    raw["training"]["max_train_examples"] = 48
    raw["objective"].update(eval_samples=4, max_new_tokens=4)
    return Runner(config_from_dict(raw))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_resumed_run_ends_as_the_uninterrupted_one(demo_path, tmp_path, method) -> None:
    runner = _runner(tmp_path, method)
    hp = HParams(learning_rate=5e-3, batch_size=8, gradient_accumulation_steps=2, epochs=4,
                 warmup_ratio=0.1, weight_decay=0.01, scheduler="cosine")  # fmt: skip
    whole = runner.train(hp, seed=3, run_name="whole")

    def stop_after_two(seed, metrics):
        if metrics.epoch == 2:
            raise Stop  # as a kill would, after epoch 2's checkpoint was written

    with pytest.raises(Stop):
        runner.train(hp, seed=3, on_epoch=stop_after_two, run_name="cut")
    cut = Path(runner.config.output_dir) / "checkpoints" / "cut" / "seed-3"
    replayed = []
    resumed = runner.train(hp, seed=3, run_name="resumed", resume_from=cut,
                           on_epoch=lambda seed, m: replayed.append(m.epoch))  # fmt: skip

    assert resumed.resumed_after == 2 and whole.resumed_after == 0
    assert replayed == [1, 2, 3, 4]  # the restored epochs are replayed to the callback
    for a, b in zip(whole.epochs, resumed.epochs, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-6, abs=1e-7)
        assert b.eval_loss == pytest.approx(a.eval_loss, rel=1e-6, abs=1e-7)
        assert b.learning_rate == pytest.approx(a.learning_rate, rel=1e-9)
    assert resumed.train_examples == whole.train_examples
    # disk: the resume state stays only in the cut run's last checkpoint; finished runs drop it
    root = Path(runner.config.output_dir) / "checkpoints"
    states = sorted(str(p.relative_to(root)) for p in root.rglob("training_state.pt"))
    assert states == ["cut/seed-3/epoch-2/training_state.pt"]


def test_no_checkpoint_means_a_fresh_start(demo_path, tmp_path) -> None:
    runner = _runner(tmp_path, "lora")
    hp = HParams(learning_rate=5e-3, batch_size=8, gradient_accumulation_steps=1, epochs=1,
                 warmup_ratio=0.1, weight_decay=0.01)  # fmt: skip
    fresh = runner.train(hp, seed=0)
    again = runner.train(hp, seed=0, resume_from=tmp_path / "nothing-here")
    assert again.resumed_after == 0
    assert again.epochs[0].eval_loss == fresh.epochs[0].eval_loss
