"""The contract every training backend keeps (hptune's loop, the Trainer, the SFTTrainer, the
user's ``train_fn`` and ``trainer_factory``): an epoch's metrics per epoch, a stop when the
callback says so, a diverged run marked as such, and the hooks' mistakes named clearly."""

from __future__ import annotations

import math

import pytest

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.train import RunnerBase, make_runner

HP = HParams(learning_rate=5e-3, batch_size=8, gradient_accumulation_steps=2, epochs=2,
             warmup_ratio=0.1, weight_decay=0.01)  # fmt: skip

BACKENDS = ["accelerate", "trainer", "sft", "train_fn", "trainer_factory"]


def _runner(tmp_path, backend: str) -> RunnerBase:
    from examples.own_training import make_trainer, train
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["training"].update(max_train_examples=48, checkpoints=False)
    raw["objective"].update(eval_samples=4, max_new_tokens=4)
    hooks = {}
    if backend == "train_fn":
        hooks = {"train_fn": train}
    elif backend == "trainer_factory":
        hooks = {"trainer_factory": make_trainer}
    else:
        raw["training"]["backend"] = backend
    return make_runner(config_from_dict(raw), **hooks)


@pytest.fixture(scope="module", params=BACKENDS)
def runner(request, demo_path, tmp_path_factory) -> RunnerBase:
    return _runner(tmp_path_factory.mktemp(request.param), request.param)


def test_a_run_reports_every_epoch_and_learns(runner) -> None:
    seen = []
    result = runner.train(HP, seed=0, on_epoch=lambda seed, m: seen.append((seed, m.epoch)))
    assert [e.epoch for e in result.epochs] == [1, 2] and seen == [(0, 1), (0, 2)]
    assert not result.diverged and not result.stopped_early
    assert all(math.isfinite(e.eval_loss) for e in result.epochs)
    assert result.epochs[-1].eval_loss < result.initial_eval_loss
    assert result.seconds > 0


def test_the_callback_stops_a_run_after_that_epoch(runner) -> None:
    result = runner.train(HP.replace(epochs=3), seed=1, on_epoch=lambda seed, m: False)
    assert [e.epoch for e in result.epochs] == [1]
    assert result.stopped_early and not result.diverged


def test_a_run_that_blows_up_is_diverged(runner) -> None:
    hp = HP.replace(learning_rate=1e30, max_grad_norm=None, warmup_ratio=0.0)
    result = runner.train(hp, seed=0)
    assert result.diverged and result.diverged_at
    assert len(result.epochs) <= 1  # within the first epoch, or at its validation


def test_two_runs_of_one_seed_are_the_same(runner) -> None:
    hp = HP.replace(epochs=1)
    first, second = runner.train(hp, seed=4), runner.train(hp, seed=4)
    assert first.epochs[0].eval_loss == pytest.approx(second.epochs[0].eval_loss, rel=1e-6)
    # the LoRA base kept across runs is left as loaded: no adapter stays in it
    assert runner._base is not None
    assert not [n for n, _ in runner._base.named_modules() if "lora_" in n]


def test_a_factory_that_ignores_the_trials_values_is_refused(demo_path, tmp_path) -> None:
    from transformers import Trainer, TrainingArguments

    from tests.conftest import tiny_config

    def fixed_rate(run):
        args = TrainingArguments(output_dir=str(tmp_path / "t"), learning_rate=2e-5,
                                 per_device_train_batch_size=run.hparams.batch_size)  # fmt: skip
        return Trainer(model=run.model(), args=args, train_dataset=run.data.train)

    raw = tiny_config(tmp_path)
    runner = make_runner(config_from_dict(raw), trainer_factory=fixed_rate)
    with pytest.raises(ConfigError, match=r"learning_rate=2e-05 \(the trial's: 0\.005\)"):
        runner.train(HP, seed=0)


def test_a_train_fn_that_reports_nothing_is_a_clear_error(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    runner = make_runner(config_from_dict(tiny_config(tmp_path)), train_fn=lambda run: None)
    with pytest.raises(ConfigError, match=r"run\.report\(epoch, model=model\)"):
        runner.train(HP, seed=0)


def test_a_train_fn_may_return_its_validation_loss(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    runner = make_runner(config_from_dict(tiny_config(tmp_path)), train_fn=lambda run: 2.5)
    result = runner.train(HP, seed=0)
    assert [(e.epoch, e.eval_loss) for e in result.epochs] == [(HP.epochs, 2.5)]


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"train_fn": "a:b", "trainer_factory": "c:d"}, "give one of them"),
        ({"train_fn": "a:b", "backend": "trainer"}, "leave training.backend out"),
    ],
)
def test_hooks_that_cannot_both_train_are_refused(tmp_path, training, message) -> None:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["training"].update(training)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_a_configured_hook_that_cannot_be_imported_is_named(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["training"]["train_fn"] = "no_such_module:train"
    with pytest.raises(ConfigError, match=r"training\.train_fn: cannot import 'no_such_module'"):
        make_runner(config_from_dict(raw))


def test_an_out_of_memory_error_propagates_and_frees_the_run(demo_path, tmp_path) -> None:
    # the objective records it for the batch phase (tests/test_objective.py); the backend
    # must let it through and leave the kept LoRA base without the run's adapter
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer

    from hptune.train.memory import is_out_of_memory
    from tests.conftest import tiny_config

    class TooBig(Trainer):
        def compute_loss(self, model, inputs, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def factory(run):
        return TooBig(
            model=run.model(),
            args=run.training_arguments(),
            train_dataset=run.data.train,
            data_collator=DataCollatorForSeq2Seq(run.tokenizer, label_pad_token_id=-100),
        )

    runner = make_runner(config_from_dict(tiny_config(tmp_path)), trainer_factory=factory)
    with pytest.raises(torch.OutOfMemoryError) as caught:
        runner.train(HP, seed=0)
    assert is_out_of_memory(caught.value)
    assert not [n for n, _ in runner._base.named_modules() if "lora_" in n]


def test_the_trainer_backend_logs_to_tensorboard_under_the_runs_folder(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["training"].update(backend="trainer", report_to=["tensorboard"], max_train_examples=32)
    runner = make_runner(config_from_dict(raw))
    result = runner.train(HP.replace(epochs=1), seed=0, run_name="tiny.baseline/trial-0")
    assert result.epochs
    logs = tmp_path / "out" / "logs" / "tiny.baseline" / "trial-0" / "seed-0"
    events = list(logs.rglob("events.out.tfevents.*"))
    assert events, sorted(p.name for p in logs.rglob("*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for event in events:
        accumulator = EventAccumulator(str(event))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert "train/hptune/eval_loss" in tags  # hptune's validation, beside the Trainer's logs


def test_a_study_refuses_runs_trained_another_way(demo_path, tmp_path) -> None:
    # hptune's backends train alike and may share a study; a user's train_fn may not, and
    # neither may the loop of an hptune from before it trained as the Trainer does
    import optuna

    from hptune import keys
    from hptune.phases import make_phase
    from hptune.pipeline._setup import check_same_setup
    from hptune.start import resolve_hparams
    from tests.conftest import tiny_config

    config = config_from_dict(tiny_config(tmp_path))
    loop = make_runner(config)
    base, _ = resolve_hparams(config, loop.data.n_train)
    phase = make_phase("baseline", config, loop, base)
    study = optuna.create_study()
    check_same_setup(study, phase, base, config, loop)
    check_same_setup(study, phase, base, config, make_runner(config))  # the same: accepted
    with pytest.raises(ConfigError, match="was run with another training"):
        check_same_setup(study, phase, base, config, make_runner(config, train_fn=lambda r: 1.0))
    setup = dict(study.user_attrs[keys.SETUP])
    del setup["training"]  # as an hptune before this one stored it
    study.set_user_attr(keys.SETUP, setup)
    with pytest.raises(ConfigError, match="was run with another training"):
        check_same_setup(study, phase, base, config, loop)


def test_your_compute_loss_func_computes_the_loss_and_the_watch_reads_it(
    demo_path, tmp_path
) -> None:
    """The loss reaches hptune through public hooks: a ``compute_loss_func`` your factory
    sets is the one that trains (a NaN from it is seen as a divergence), it is yours again
    after the run, and no method of the Trainer is replaced."""
    from transformers import DataCollatorForSeq2Seq, Trainer

    from tests.conftest import tiny_config

    built: list[Trainer] = []
    calls = {"n": 0, "nan_from": 3}

    def my_loss(outputs, labels, num_items_in_batch=None):
        (trainer,) = built
        assert "compute_loss" not in vars(trainer)  # the Trainer's own method, not a patch
        calls["n"] += 1
        logits = outputs.logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
        )
        return loss * float("nan") if calls["n"] >= calls["nan_from"] else loss

    def factory(run):
        trainer = Trainer(
            model=run.model(),
            args=run.training_arguments(),
            train_dataset=run.data.train,
            data_collator=DataCollatorForSeq2Seq(run.tokenizer, label_pad_token_id=-100),
            compute_loss_func=my_loss,
        )
        built.append(trainer)
        return trainer

    import torch

    raw = tiny_config(tmp_path)
    raw["training"].update(max_train_examples=48, checkpoints=False)
    runner = make_runner(config_from_dict(raw), trainer_factory=factory)
    result = runner.train(HP, seed=0)
    assert result.diverged and calls["n"] == 3  # the third batch's NaN stopped the run there
    assert "step 3" in (result.diverged_at or "")
    assert built[0].compute_loss_func is my_loss  # given back as it was


def test_every_declared_backend_has_its_class_and_its_name() -> None:
    from typing import get_args

    from hptune.config._backends import BACKENDS, BackendName
    from hptune.train.backends import RUNNERS

    assert get_args(BackendName) == tuple(BACKENDS) == tuple(RUNNERS)
    for name, runner in RUNNERS.items():
        assert runner.declared is BACKENDS[name]
