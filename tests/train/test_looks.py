"""Looks within an epoch (``training.eval_steps``): where they fall in every backend, that
they measure what an epoch's end measures without changing the training, and a look that
stops the run."""

from __future__ import annotations

import pytest

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.train import EpochMetrics, make_runner
from hptune.train._looks import looks_per_epoch, replay_epoch

# 96 examples at 4 x 4: 6 optimizer steps an epoch; eval_steps 2 looks after steps 2 and 4
HP = HParams(learning_rate=5e-3, batch_size=4, gradient_accumulation_steps=4, epochs=2,
             warmup_ratio=0.0, weight_decay=0.0, scheduler="linear")  # fmt: skip


def _config(tmp_path, backend: str = "accelerate", **training):
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["training"].update({"max_train_examples": 96, "checkpoints": False, "backend": backend})
    raw["training"].update(training)
    return config_from_dict(raw)


class Recorder:
    """An epoch callback with a ``look``, as hptune's objective passes; stops at look N."""

    def __init__(self, stop_at_look: int | None = None) -> None:
        self.looks: list[tuple[int, float, int]] = []
        self.ends: list[int] = []
        self.stop_at_look = stop_at_look

    def __call__(self, seed: int, metrics: EpochMetrics) -> bool:
        self.ends.append(metrics.epoch)
        return True

    def look(self, seed: int, epoch: int, value: float, per_epoch: int) -> bool:
        self.looks.append((epoch, value, per_epoch))
        return len(self.looks) != self.stop_at_look


def test_an_epoch_adds_its_looks_and_its_end() -> None:
    assert [looks_per_epoch(6, n) for n in (None, 1, 2, 4, 6, 9)] == [1, 6, 3, 2, 1, 1]
    assert looks_per_epoch(7, 2) == 4  # steps 2, 4, 6 and the end at 7
    assert looks_per_epoch(1, 1) == 1


def test_a_resumed_epoch_replays_its_looks_before_its_end() -> None:
    recorder = Recorder()
    metrics = EpochMetrics(epoch=3, train_loss=1.0, eval_loss=2.0, score=None,
                           learning_rate=0.1, looks=[2.5, 2.2])  # fmt: skip
    assert replay_epoch(recorder, 0, metrics, 3)
    assert recorder.looks == [(3, 2.5, 3), (3, 2.2, 3)] and recorder.ends == [3]
    assert not replay_epoch(Recorder(stop_at_look=1), 0, metrics, 3)


@pytest.fixture(scope="module")
def loop_run(demo_path, tmp_path_factory):
    recorder = Recorder()
    runner = make_runner(_config(tmp_path_factory.mktemp("loop"), eval_steps=2))
    return runner.train(HP, 0, recorder), recorder


@pytest.mark.parametrize("backend", ["accelerate", "trainer"])
def test_every_backend_looks_every_eval_steps_and_trains_as_without_looks(
    loop_run, tmp_path, backend
) -> None:
    loop_result, loop_recorder = loop_run
    recorder = Recorder()
    with_looks = make_runner(_config(tmp_path, backend, eval_steps=2)).train(HP, 0, recorder)
    assert [(e, n) for e, _, n in recorder.looks] == [(1, 3), (1, 3), (2, 3), (2, 3)]
    assert recorder.ends == [1, 2]
    assert [m.looks for m in with_looks.epochs] == [
        [v for e, v, _ in recorder.looks if e == epoch] for epoch in (1, 2)
    ]
    # Validation between steps changes nothing of the training: the same epochs' values.
    plain = make_runner(_config(tmp_path / "plain", backend)).train(HP, 0)
    assert [m.eval_loss for m in with_looks.epochs] == pytest.approx(
        [m.eval_loss for m in plain.epochs], rel=1e-6
    )
    assert all(m.looks == [] for m in plain.epochs)
    # Both backends look at the same steps and measure the same values there.
    for ours, theirs in zip(loop_recorder.looks, recorder.looks, strict=True):
        assert ours[1] == pytest.approx(theirs[1], rel=1e-3)
    # The looks move between the epochs' ends: a curve the pruner can read within an epoch.
    first_look, second_look, _, _ = (v for _, v, _ in recorder.looks)
    assert first_look > second_look > with_looks.epochs[0].eval_loss
    assert loop_result.epochs[0].looks == [v for e, v, _ in loop_recorder.looks if e == 1]


@pytest.mark.parametrize("backend", ["accelerate", "trainer"])
def test_a_look_that_stops_the_run_stops_it_there(demo_path, tmp_path, backend) -> None:
    recorder = Recorder(stop_at_look=1)
    result = make_runner(_config(tmp_path, backend, eval_steps=2)).train(HP, 0, recorder)
    assert result.stopped_early and result.epochs == [] and recorder.ends == []
    assert result.train_examples == 2 * 4 * 4  # two optimizer steps of 4 x 4 examples


def test_a_train_fn_cannot_look_within_epochs(demo_path, tmp_path) -> None:
    from hptune.train.user import FunctionRunner

    with pytest.raises(ConfigError, match="training.eval_steps"):
        FunctionRunner(_config(tmp_path, eval_steps=2), lambda run: None)


def test_a_non_finite_look_ends_the_run_as_diverged_without_shifting_the_curve() -> None:
    from hptune.train._looks import EpochLooks
    from hptune.train._results import RunResult

    values = iter([2.0, float("nan"), 1.5])  # a later finite look would take the NaN's place
    recorder = Recorder()
    looks = EpochLooks(8, 2, recorder, lambda model: next(values))
    result = RunResult(seed=0)
    model = type("Model", (), {"train": lambda self: None})()
    assert looks.after_step(model, result, 1, 2)
    assert not looks.after_step(model, result, 1, 4)
    assert result.diverged and result.diverged_at == "epoch 1, step 4 (validation)"
    assert recorder.looks == [(1, 2.0, 4)]
