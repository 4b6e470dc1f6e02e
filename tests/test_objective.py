"""The objective's logic on scripted curves: reports, early stopping, pruning, OOM, reuse.

The runner here is a fake that replays given validation curves (a unit test of the logic
around training); the pipeline tests train for real.
"""

import optuna
import pytest
import torch

from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.objective import SeedObjective, TrialOutOfMemory
from hptune.phases import BaselinePhase, EpochsPhase
from hptune.train import EpochMetrics, RunResult

BASE = HParams(
    learning_rate=1e-4,
    batch_size=4,
    gradient_accumulation_steps=1,
    epochs=4,
    warmup_ratio=0.05,
    weight_decay=0.01,
)


class ScriptedRunner:
    """Plays ``curves[seed]`` as validation losses, honouring the epoch callback."""

    def __init__(self, config, curves, oom_from_batch=None):
        self.config = config
        self.curves = curves
        self.oom_from_batch = oom_from_batch
        self.epochs_trained = 0

    def train(self, hp, seed, on_epoch=None, **kwargs):
        if self.oom_from_batch is not None and hp.batch_size >= self.oom_from_batch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        result = RunResult(seed=seed, seconds=1.0, train_examples=100, train_tokens=1000)
        for epoch, loss in enumerate(self.curves[seed][: hp.epochs], start=1):
            self.epochs_trained += 1
            metrics = EpochMetrics(epoch, loss + 0.5, loss, None, hp.learning_rate)
            result.epochs.append(metrics)
            if on_epoch is not None and on_epoch(seed, metrics) is False:
                result.stopped_early = True
                break
        return result


@pytest.fixture
def config(tiny_config_dict):
    tiny_config_dict["objective"]["seeds"] = 2
    tiny_config_dict["training"]["early_stopping_patience"] = 2
    return config_from_dict(tiny_config_dict)


def test_reports_each_seed_and_epoch_as_a_running_seed_mean(config) -> None:
    runner = ScriptedRunner(config, {0: [3.0, 2.0, 1.5, 1.4], 1: [3.2, 2.2, 1.7, 1.6]})
    study = optuna.create_study()
    study.optimize(SeedObjective(runner, BaselinePhase(), BASE), n_trials=1)
    trial = study.trials[0]
    # steps 1-4: seed 0 alone; steps 5-8: the mean of both seeds' best-so-far values
    assert trial.intermediate_values == pytest.approx(
        {1: 3.0, 2: 2.0, 3: 1.5, 4: 1.4, 5: 3.1, 6: 2.1, 7: 1.6, 8: 1.5}
    )
    assert trial.value == pytest.approx(1.5)
    assert trial.user_attrs["best_epochs"] == {"0": 4, "1": 4}


def test_early_stopping_keeps_the_best_epoch(config) -> None:
    # seed 0 is best at epoch 2 and then gets worse: it stops after 2 epochs without gain
    runner = ScriptedRunner(config, {0: [2.0, 1.0, 1.2, 1.3, 1.4], 1: [2.0, 1.5, 1.4, 1.3, 1.2]})
    study = optuna.create_study()
    study.optimize(SeedObjective(runner, BaselinePhase(), BASE.replace(epochs=5)), n_trials=1)
    runs = study.trials[0].user_attrs["runs"]
    assert [len(r["epochs"]) for r in runs] == [4, 5]
    assert runs[0]["stopped_early"] is True
    assert study.trials[0].user_attrs["seed_values"] == {"0": 1.0, "1": 1.2}


def test_a_hopeless_trial_is_pruned_after_its_first_seed(config) -> None:
    good = {0: [3.0, 2.0, 1.5], 1: [3.0, 2.1, 1.6]}  # seed std at epoch 2: 0.07
    bad = {0: [3.0, 2.9, 2.8], 1: [3.0, 2.9, 2.8]}
    phase = EpochsPhase((2, 3))
    study = optuna.create_study(pruner=phase.create_pruner())
    # references of the same schedule length, each with noise of its own (the pruner's noise)
    jitters = ([0.0, 0.0], [0.04, -0.04], [-0.03, 0.03], [0.02, 0.01])
    references = [{s: [v + j[s] for v in c] for s, c in good.items()} for j in jitters]
    for curves in references:
        study.enqueue_trial({"epochs": 3})
        study.optimize(SeedObjective(ScriptedRunner(config, curves), phase, BASE), n_trials=1)
    runner = ScriptedRunner(config, bad)
    study.enqueue_trial({"epochs": 3})
    study.optimize(SeedObjective(runner, phase, BASE), n_trials=1)
    trial = study.trials[-1]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["status"] == "pruned"
    assert trial.user_attrs["pruned_at"] == {"seed": 0, "epoch": 2, "step": 2}
    assert runner.epochs_trained == 2  # of the 6 a full trial would train


def test_a_plain_median_pruner_prunes_on_the_reported_seed_means(config) -> None:
    """Optuna's own pruner reads the channel hptune._trial_state documents: seed ``i``'s epoch
    ``e`` at step ``i x stride + e``, the mean of seeds ``0..i``'s best-so-far values."""
    good = [
        {0: [3.0, 2.0, 1.5, 1.4], 1: [3.2, 2.2, 1.7, 1.6]},
        {0: [3.1, 2.1, 1.6, 1.5], 1: [3.3, 2.3, 1.8, 1.9]},
    ]
    bad = {0: [3.0, 2.9, 3.1, 2.8], 1: [3.0, 2.9, 2.8, 2.7]}
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for curves in good:
        study.optimize(SeedObjective(ScriptedRunner(config, curves), BaselinePhase(), BASE), 1)
    runner = ScriptedRunner(config, bad)
    study.optimize(SeedObjective(runner, BaselinePhase(), BASE), n_trials=1)
    complete, pruned = study.trials[1], study.trials[-1]
    # steps 1-4: seed 0 alone; 5-8: both seeds' mean (seed 1's last epoch: its best, 1.8)
    assert complete.intermediate_values == pytest.approx(
        {1: 3.1, 2: 2.1, 3: 1.6, 4: 1.5, 5: 3.2, 6: 2.2, 7: 1.7, 8: 1.65}
    )
    # at step 2 its best so far (2.9) is behind the complete trials' median there (2.05)
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert pruned.user_attrs["status"] == "pruned"
    assert pruned.user_attrs["pruned_at"] == {"seed": 0, "epoch": 2, "step": 2}
    assert pruned.intermediate_values == {1: 3.0, 2: 2.9}
    assert runner.epochs_trained == 2


class LookingRunner(ScriptedRunner):
    """Plays ``curves[seed]`` as positions of epochs of two: a look within, then the end."""

    def train(self, hp, seed, on_epoch=None, **kwargs):
        result = RunResult(seed=seed, seconds=1.0, train_examples=100, train_tokens=1000)
        curve = self.curves[seed]
        for epoch in range(1, hp.epochs + 1):
            look, end = curve[2 * epoch - 2 : 2 * epoch]
            self.epochs_trained += 0.5
            if on_epoch.look(seed, epoch, look, 2) is False:
                result.stopped_early = True
                break
            self.epochs_trained += 0.5
            metrics = EpochMetrics(epoch, end + 0.5, end, None, hp.learning_rate, looks=[look])
            result.epochs.append(metrics)
            if on_epoch(seed, metrics) is False:
                result.stopped_early = True
                break
        return result


def test_a_hopeless_trial_is_pruned_at_a_look_within_an_epoch(config) -> None:
    good = {0: [3.5, 3.0, 2.5, 2.0, 1.8, 1.5], 1: [3.6, 3.0, 2.6, 2.1, 1.8, 1.6]}
    bad = {0: [3.5, 3.0, 2.95, 2.9, 2.85, 2.8], 1: [3.5, 3.0, 2.95, 2.9, 2.85, 2.8]}
    phase = EpochsPhase((2, 3))
    study = optuna.create_study(pruner=phase.create_pruner())
    jitters = ([0.0, 0.0], [0.04, -0.04], [-0.03, 0.03], [0.02, 0.01])
    for j in jitters:
        curves = {s: [v + j[s] for v in c] for s, c in good.items()}
        study.enqueue_trial({"epochs": 3})
        study.optimize(SeedObjective(LookingRunner(config, curves), phase, BASE), n_trials=1)
    assert study.trials[0].user_attrs["looks_per_epoch"] == 2
    runner = LookingRunner(config, bad)
    study.enqueue_trial({"epochs": 3})
    study.optimize(SeedObjective(runner, phase, BASE), n_trials=1)
    trial = study.trials[-1]
    assert trial.state == optuna.trial.TrialState.PRUNED
    # the look within epoch 2 (position 3): before that epoch's end was trained
    assert trial.user_attrs["pruned_at"] == {"seed": 0, "epoch": 2, "look": True}
    assert runner.epochs_trained == 1.5
    # a stored run read back replays its looks: the same curve for the pruner
    stored = study.trials[0]
    lookup = lambda hp, seeds: ("earlier#0", stored.user_attrs["runs"])  # noqa: E731
    again = optuna.create_study()
    again.optimize(SeedObjective(runner, phase, BASE, reuse=lookup), n_trials=1)
    assert again.trials[0].user_attrs["seed_curves"] == stored.user_attrs["seed_curves"]
    assert again.trials[0].user_attrs["looks_per_epoch"] == 2  # its positions read as such


def test_out_of_memory_is_recorded_not_fatal(config) -> None:
    runner = ScriptedRunner(config, {0: [1.0], 1: [1.0]}, oom_from_batch=4)
    study = optuna.create_study()
    study.optimize(
        SeedObjective(runner, BaselinePhase(), BASE), n_trials=1, catch=(TrialOutOfMemory,)
    )
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["status"] == "oom"
    assert trial.user_attrs["oom"]["batch_size"] == 4
    assert "out of memory" in trial.user_attrs["oom"]["message"]


def test_a_known_configuration_is_read_back_not_trained(config) -> None:
    runner = ScriptedRunner(config, {0: [3.0, 2.0], 1: [3.2, 2.2]})
    hp = BASE.replace(epochs=2)
    first = optuna.create_study()
    first.optimize(SeedObjective(runner, BaselinePhase(), hp), n_trials=1)
    stored = first.trials[0].user_attrs["runs"]

    def lookup(wanted, seeds):
        return ("earlier#0", stored) if wanted == hp and seeds == [0, 1] else None

    trained_before = runner.epochs_trained
    second = optuna.create_study()
    second.optimize(SeedObjective(runner, BaselinePhase(), hp, reuse=lookup), n_trials=1)
    assert runner.epochs_trained == trained_before
    again = second.trials[0]
    assert again.value == pytest.approx(first.trials[0].value)
    assert again.intermediate_values == pytest.approx(first.trials[0].intermediate_values)
    assert again.user_attrs["reused_from"] == "earlier#0"


def test_the_stored_throughput_is_per_gpu(config) -> None:
    class TwoGPURunner(ScriptedRunner):
        def train(self, hp, seed, on_epoch=None, **kwargs):
            result = super().train(hp, seed, on_epoch, **kwargs)
            result.processes, result.train_examples, result.train_tokens = 2, 200, 2000
            return result

    runner = TwoGPURunner(config, {0: [2.0], 1: [2.1]})
    study = optuna.create_study()
    study.optimize(SeedObjective(runner, BaselinePhase(), BASE.replace(epochs=1)), n_trials=1)
    attrs = study.trials[0].user_attrs
    # 200 examples in 1 s over 2 processes: 100 per GPU, as budget.examples_per_second
    assert attrs["examples_per_second"] == pytest.approx(100.0)
    assert attrs["tokens_per_second"] == pytest.approx(1000.0)
