"""All five phases end to end on the real stack, an injected OOM, export, and kill -9 resume."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import torch
import yaml

from hptune import keys
from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.pipeline import run_phase, tune
from hptune.train import Runner
from tests.conftest import five_phase_config

ALL_PHASES = ["baseline", "learning_rate", "batch_size", "epochs", "regularization"]


def test_all_phases_decide_in_order_and_carry_forward(five) -> None:
    config, result, _ = five
    assert [p.phase for p in result.phases] == ALL_PHASES
    names = {s.study_name for s in optuna.get_all_study_summaries(config.storage_url)}
    assert names == {f"tiny.{p}" for p in [*ALL_PHASES, "final"]}
    hp = None
    for phase in result.phases:
        study = optuna.load_study(study_name=f"tiny.{phase.phase}", storage=config.storage_url)
        assert "hptune.decision" in study.user_attrs
        assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED", "FAIL"}
        base = HParams.from_dict(study.user_attrs["hptune.setup"]["base_hparams"])
        if hp is not None:
            assert base == hp  # each phase starts from the decisions before it
        hp = phase.decision.apply(base)
    assert hp == result.hparams


def test_batch_phase_respects_the_memory_limit(five) -> None:
    _, result, _ = five
    batch = result.phases[2]
    tried = sorted(o.params["batch_size"] for o in batch.outcomes)
    assert tried == [4, 8]  # 16 (the effective batch) is predicted not to fit
    memory = {row["batch_size"]: row for row in batch.decision.summary["memory"]}
    assert not memory[16]["fits"] and memory[8]["fits"]
    chosen = batch.decision.params
    assert chosen["batch_size"] * chosen["gradient_accumulation_steps"] == 16
    assert batch.decision.case in ("fastest_equivalent", "best", "best_mean_undecided")


def test_epochs_and_regularization_are_decided_with_pruning_available(five) -> None:
    _, result, events = five
    epochs = result.phases[3]
    assert sorted(o.params["epochs"] for o in epochs.outcomes) == [1, 2, 3]
    assert epochs.decision.params["epochs"] in (1, 2, 3)
    regularization = result.phases[4]
    assert len(regularization.outcomes) == 3
    first = min(regularization.outcomes, key=lambda o: o.number)
    incoming = epochs.decision.apply(result.phases[2].decision.apply(HParams(
        **{**result.hparams.to_dict(), "weight_decay": 0.01, "warmup_ratio": 0.05,
           "scheduler": "linear"})))  # fmt: skip
    assert first.params == {"weight_decay": incoming.weight_decay, "scheduler": "linear",
                            "warmup_ratio": incoming.warmup_ratio,
                            "learning_rate": incoming.learning_rate,
                            "epochs": incoming.epochs}  # fmt: skip
    # then the next candidate at the incoming rate and half of it (n_trials: 3 caps the grid)
    rates = [o.params["learning_rate"] for o in sorted(regularization.outcomes,
                                                        key=lambda o: o.number)]  # fmt: skip
    assert rates == [incoming.learning_rate, incoming.learning_rate, incoming.learning_rate / 2]
    # the same configuration trained by an earlier phase is read back, not trained again
    assert any(e.get("event") == "reused" for e in events)


def test_the_test_split_is_measured_once_and_apart(five) -> None:
    config, result, _ = five
    assert result.final is not None
    summary = result.final.decision.summary
    assert set(summary["test"]["seed_values"]) == {"0", "1"}
    assert summary["hparams"] == result.hparams.to_dict()
    # no phase's study holds a test value: the test split never fed a decision
    for phase in ALL_PHASES:
        study = optuna.load_study(study_name=f"tiny.{phase}", storage=config.storage_url)
        assert all("test_values" not in t.user_attrs for t in study.trials)


@pytest.mark.slow
def test_the_same_configuration_run_twice_stores_the_same_trials_and_decisions(
    five, tmp_path
) -> None:
    # Every phase, racing and pruning included, on a fresh output directory: the stores are
    # read with Optuna alone (scripts/compare_runs.py) and compared bit for bit.
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "scripts" / "compare_runs.py"
    spec = importlib.util.spec_from_file_location("compare_runs", script)
    assert spec is not None and spec.loader is not None
    compare_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_runs)
    config, _, _ = five
    again = config_from_dict(five_phase_config(tmp_path / "again"))
    tune(again)
    first = compare_runs.read(Path(config.output_dir) / "hptune.db")
    second = compare_runs.read(Path(again.output_dir) / "hptune.db")
    assert len(first) == len(ALL_PHASES) + 1  # and the final evaluation
    assert sum(len(study["trials"]) for study in first.values()) >= 12
    assert compare_runs.differences(first, second, 0.0) == []


def test_exported_gradient_checkpointing_is_accepted_without_a_warning(tmp_path) -> None:
    from transformers import TrainingArguments
    from trl import SFTConfig

    from hptune.train.arguments import _checkpointing

    (key,) = _checkpointing(True)
    for enabled in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            args = TrainingArguments(output_dir=str(tmp_path), **_checkpointing(enabled))
            # said either way: TRL's SFTConfig would turn it on by default
            sft = SFTConfig(output_dir=str(tmp_path), bf16=False, **_checkpointing(enabled))
        assert getattr(args, key) is enabled and getattr(sft, key) is enabled


def test_export_builds_trainer_and_peft_configs(five, tmp_path) -> None:
    from peft import LoraConfig
    from transformers import TrainingArguments

    from hptune._export import export

    config, result, _ = five
    yaml_path, json_path = export(config, tmp_path / "export")
    exported = yaml.safe_load(yaml_path.read_text())
    assert exported == json.loads(json_path.read_text())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = TrainingArguments(output_dir=str(tmp_path / "trainer"), **exported["training_args"])
    # transformers accepts every exported key as it is, without a deprecation warning
    deprecated = [
        str(w.message)
        for w in caught
        if issubclass(w.category, (FutureWarning, DeprecationWarning))
    ]
    assert [
        m for m in deprecated if any(f"`{key}`" in m for key in exported["training_args"])
    ] == []
    hp = result.hparams
    assert args.learning_rate == hp.learning_rate
    assert args.per_device_train_batch_size == hp.batch_size
    assert args.gradient_accumulation_steps == hp.gradient_accumulation_steps
    assert args.num_train_epochs == hp.epochs
    assert args.weight_decay == hp.weight_decay
    assert args.lr_scheduler_type.value == hp.scheduler
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    # what reproduces the run: its seed, data order, optimizer and precision (a CPU: none)
    assert (args.seed, args.data_seed) == (config.objective.seed_list[0],) * 2
    assert args.optim.value == "adamw_torch_fused" and not args.bf16 and not args.fp16
    assert exported["model_init"] == {"dtype": "float32"}  # "auto" as resolved on a CPU
    assert exported["data"] == {"format": "template", "max_length": 96,
                                "template": "Question: {question}\nAnswer: ",
                                "response_field": "answer",
                                "loss_on": "the completion only",
                                "tokenization": "hptune"}  # fmt: skip
    lora = LoraConfig(**exported["lora_config"])
    assert (lora.r, lora.lora_alpha) == (config.method.r, config.method.alpha)
    assert "test" in exported["hptune"]["decisions"]["final"]
    from trl import SFTConfig

    sft = SFTConfig(output_dir=str(tmp_path / "sft"), **exported["training_args"],
                    **exported["sft_config"])  # fmt: skip
    assert sft.completion_only_loss is True and sft.max_length == 96 and not sft.packing
    assert sft.learning_rate == hp.learning_rate and sft.data_seed == args.data_seed
    assert not sft.bf16 and not sft.gradient_checkpointing  # as the trials trained


def test_export_before_the_run_is_a_clear_error(demo_path, tmp_path) -> None:
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(five_phase_config(tmp_path)))
    done = subprocess.run([sys.executable, "-m", "hptune", "export", str(config_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert "run 'hptune run' on this configuration first" in done.stderr
    assert "Traceback" not in done.stderr


class OutOfMemoryFromBatch(Runner):
    """The real runner, with a CUDA-style OOM injected at and above a batch size."""

    limit = 8

    def train(self, hp, seed, on_epoch=None, **kwargs):
        if hp.batch_size >= self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return super().train(hp, seed, on_epoch, **kwargs)


def test_an_injected_oom_ends_the_trial_and_bounds_later_proposals(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["training"]["batch_size"] = 16  # effective batch 16: candidates 1, 2, 4, 8, 16
    raw["phases"] = {"run": ["batch_size"], "batch_size": {"n_trials": 2}}
    config = config_from_dict(raw)
    base = HParams(learning_rate=5e-3, batch_size=16, gradient_accumulation_steps=1, epochs=1,
                   warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip
    result = run_phase(config, "batch_size", base, runner=OutOfMemoryFromBatch(config))
    study = optuna.load_study(study_name="tiny.batch_size", storage=config.storage_url)
    trials = [t for t in study.trials if keys.RACE_OF not in t.user_attrs]  # racing: extra seeds
    proposed = [t.params["batch_size"] for t in trials]
    assert proposed == [16, 8, 4, 2]  # after the OOM at 16 nothing >= 16; after 8, nothing >= 8
    assert [t.user_attrs["status"] for t in trials] == ["oom", "oom", "ok", "ok"]
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    raced = {t.params["batch_size"] for t in study.trials if keys.RACE_OF in t.user_attrs}
    assert raced <= {2, 4}  # only configurations that trained are raced
    assert result.decision.params["batch_size"] in (2, 4)
    assert (
        result.decision.params["gradient_accumulation_steps"] * result.decision.params["batch_size"]
        == 16
    )


@pytest.mark.slow
def test_kill_9_during_the_epochs_phase_then_resume(demo_path, tmp_path) -> None:
    raw = five_phase_config(tmp_path)
    raw["phases"]["run"] = ["baseline", "epochs"]
    raw["phases"]["test_evaluation"] = False
    raw["training"]["max_train_examples"] = 256
    raw["training"]["candidates_together"] = False  # one seed's checkpoints at a time
    raw["heartbeat_seconds"], raw["stale_seconds"] = 1, 2
    config_path = tmp_path / "kill.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    storage = f"sqlite:///{tmp_path / 'out' / 'hptune.db'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "hptune", "run", "-q", str(config_path)]
    process = subprocess.Popen(command, env=env)
    try:
        before = _wait_for_running_epochs_trial(storage, process)
        process.kill()  # SIGKILL: no handler, no cleanup
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    study = optuna.load_study(study_name="tiny.epochs", storage=storage)
    assert "RUNNING" in {t.state.name for t in study.trials}  # left behind by the kill

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    trials = optuna.load_study(study_name="tiny.epochs", storage=storage).trials
    assert "RUNNING" not in {t.state.name for t in trials}
    for number, value in before.items():  # every trial finished before the kill is kept
        assert trials[number].state.name in ("COMPLETE", "PRUNED")
        assert trials[number].value == value
    killed = [t for t in trials if t.state.name == "FAIL"]
    assert len(killed) == 1
    retried = [t for t in trials if t.params == killed[0].params and t.number > killed[0].number]
    assert retried and retried[0].state.name in ("COMPLETE", "PRUNED")
    decided = {p for p in ("baseline", "epochs")
               if "hptune.decision" in optuna.load_study(study_name=f"tiny.{p}",
                                                         storage=storage).user_attrs}  # fmt: skip
    assert decided == {"baseline", "epochs"}


def _wait_for_running_epochs_trial(storage: str, process: subprocess.Popen) -> dict[int, float]:
    """Wait until the epochs phase has a finished trial and a running one; return finished."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        try:  # as a reading peer: never create the tables the run is creating
            rdb = optuna.storages.RDBStorage(storage, skip_table_creation=True)
            study = optuna.load_study(study_name="tiny.epochs", storage=rdb)
            trials = study.get_trials(deepcopy=False)
        except (KeyError, optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError):
            trials = []  # tables or study not created yet
        finished = {t.number: t.value for t in trials if t.state.name in ("COMPLETE", "PRUNED")}
        running = [t for t in trials if t.state.name == "RUNNING"]
        if finished and running and running[0].intermediate_values:
            return finished
        time.sleep(0.2)
    raise AssertionError("the epochs phase never had a finished and a running trial")


class NanFromEpoch2(Runner):
    """The real runner with a NaN loss injected at the first step of epoch 2 of one trial."""

    poisoned_lr = 1e-3

    def step_loss(self, model, batch, epoch):
        loss = super().step_loss(model, batch, epoch)
        if epoch == 2 and self._current_lr == self.poisoned_lr:
            return loss * float("nan")
        return loss

    def train(self, hp, seed, on_epoch=None, **kwargs):
        self._current_lr = hp.learning_rate
        return super().train(hp, seed, on_epoch, **kwargs)


def test_a_nan_at_epoch_2_ends_that_trial_within_the_epoch(
    demo_path, tmp_path, capsys, monkeypatch
) -> None:
    from hptune import run
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["training"]["epochs"] = 3
    raw["phases"] = {
        "run": ["learning_rate"],
        "learning_rate": {"grid": [1e-3, 5e-3], "extend_edges": 0},
    }
    config = config_from_dict(raw)
    import hptune.pipeline as pipeline

    original = pipeline.tune

    def tune_with_nan(config, *, progress=None, runner=None):
        return original(config, progress=progress, runner=NanFromEpoch2(config))

    monkeypatch.setattr(pipeline, "tune", tune_with_nan)  # hptune.run, with the NaN runner
    result = run(config)
    logged = capsys.readouterr().err
    study = optuna.load_study(study_name="tiny.learning_rate", storage=config.storage_url)
    poisoned = next(t for t in study.trials if t.params["learning_rate"] == 1e-3)
    assert poisoned.state.name == "PRUNED"
    assert poisoned.user_attrs["status"] == "diverged"
    assert poisoned.user_attrs["diverged"]["at"].startswith("epoch 2, step 1 (loss nan)")
    (run_0,) = poisoned.user_attrs["runs"]  # the first seed stopped it; no second seed ran
    assert len(run_0["epochs"]) == 1  # epoch 1 finished, epoch 2 ended at its first step
    assert "diverged (seed 0, epoch 2, step 1 (loss nan))" in logged
    healthy = next(t for t in study.trials if t.params["learning_rate"] == 5e-3)
    assert healthy.state.name == "COMPLETE"  # the study went on
    assert result.phases[0].decision.params == {"learning_rate": 5e-3}
    # the diverged trial's checkpoints are gone, the healthy one's best and last are kept
    checkpoints = Path(config.output_dir) / "checkpoints" / "tiny.learning_rate"
    assert not (checkpoints / f"trial-{poisoned.number}").exists()
    kept = sorted(p.name for p in (checkpoints / f"trial-{healthy.number}" / "seed-0").iterdir())
    assert kept[-1] == "epoch-3" and 1 <= len(kept) <= 2
    assert (checkpoints / f"trial-{healthy.number}" / "seed-0" / kept[-1] /
            "adapter_model.safetensors").is_file()  # fmt: skip


def test_tensorboard_event_files_per_trial_and_seed(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["phases"] = {
        "run": ["learning_rate"],
        "learning_rate": {"grid": [1e-3, 5e-3], "extend_edges": 0},
    }
    raw["training"]["report_to"] = ["tensorboard"]
    config = config_from_dict(raw)
    tune(config)
    logs = Path(config.output_dir) / "logs" / "tiny.learning_rate"
    for trial in (0, 1):
        for seed in (0, 1):
            events = list((logs / f"trial-{trial}" / f"seed-{seed}").glob("events.out.tfevents.*"))
            assert events, f"no TensorBoard events for trial {trial} seed {seed}"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logs / "trial-0" / "seed-0"))
    accumulator.Reload()
    assert "eval_loss" in accumulator.Tags()["scalars"]


def test_reporting_to_an_uninstalled_tracker_is_refused(tiny_config_dict) -> None:
    import importlib.util

    from hptune.exceptions import ConfigError

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    tiny_config_dict["training"]["report_to"] = ["wandb"]
    with pytest.raises(ConfigError, match="wandb is not installed; pip install wandb"):
        config_from_dict(tiny_config_dict)


def test_an_overfitting_incoming_configuration_moves_the_later_phases(demo_path, tmp_path) -> None:
    from hptune.diagnose import Diagnosis
    from hptune.pipeline import make_phase

    raw = five_phase_config(tmp_path)
    raw["phases"]["epochs"] = {"range": [2, 4]}
    config = config_from_dict(raw)
    runner = Runner(config)
    base = HParams(learning_rate=5e-3, batch_size=8, gradient_accumulation_steps=2, epochs=6,
                   warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip
    over = [Diagnosis("overfitting", "rose", {"training.epochs": 1}) for _ in range(2)]
    epochs = make_phase("epochs", config, runner, base, incoming=over)
    assert epochs.values == [1, 2, 3, 4] and "overfits" in epochs.notes[0]
    regularization = make_phase("regularization", config, runner, base, incoming=over)
    assert regularization.weight_decay == (pytest.approx(0.0316), 0.1)
    healthy = [Diagnosis("healthy", "fine") for _ in range(2)]
    assert make_phase("regularization", config, runner, base, incoming=healthy).weight_decay == (
        0.01,
        0.1,
    )


def test_a_diverged_trial_is_retried_once_with_the_remedy(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["training"].update({"learning_rate": 1e-3, "epochs": 2})
    raw["phases"] = {"run": ["baseline"]}
    raw["diagnostics"] = {"retry_diverged": True}
    config = config_from_dict(raw)
    result = tune(config, runner=NanFromEpoch2(config))  # NaN at epoch 2 when lr is 1e-3
    trials = optuna.load_study(study_name="tiny.baseline", storage=config.storage_url).trials
    assert [(t.state.name, t.user_attrs["status"]) for t in trials] == [
        ("PRUNED", "diverged"),
        ("COMPLETE", "ok"),
    ]
    remedy = trials[1].user_attrs
    assert remedy["hptune.remedy"] == {"learning_rate": pytest.approx(1e-4)}
    assert remedy["hptune.remedy_of"] == 0
    assert remedy["hptune.fixes"].startswith("diverged: training.learning_rate 0.001 -> 0.0001")
    decision = result.phases[0].decision
    assert decision.params == {"learning_rate": pytest.approx(1e-4)}
    assert "trained only with the divergence remedy" in decision.reason
    assert result.hparams.learning_rate == pytest.approx(1e-4)


@pytest.mark.slow
def test_the_demo_batch_phase_tries_a_batch_above_the_incoming_one(demo_path, tmp_path) -> None:
    """The demo (512 examples, 2 epochs) on a 1 GB stand-in GPU: batch 64 fits, above the
    incoming effective batch 32 (4 x 8); it is compared with the incoming batch on the paired
    seeds and wins only within noise."""
    import yaml

    from hptune.config import config_from_dict
    from hptune.pipeline import tune
    from tests.conftest import EXAMPLES

    raw = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    raw["training"].update(max_train_examples=512, max_validation_examples=64, epochs=2,
                           checkpoints=False)  # fmt: skip
    raw["objective"]["max_seeds"] = raw["objective"].get("seeds", 3)  # no racing: not its test
    # batch 64 at the incoming rate only: the rate probes a larger batch adds are
    # tests/phases/test_batch_size.py's and tests/pipeline/test_queue.py's subject
    raw["phases"] = {"run": ["baseline", "batch_size"],
                     "batch_size": {"memory_limit_gb": 1.0, "n_trials": 3,
                                    "rate_factors": [1.0]}}  # fmt: skip
    raw["output_dir"] = str(tmp_path / "out")
    result = tune(config_from_dict(raw))
    batch = result.phases[1]
    rows = {row["batch_size"]: row for row in batch.decision.summary["table"]}
    assert sorted(rows) == [4, 32, 64]  # the incoming 4 (x 8), then the largest first
    assert rows[64]["gradient_accumulation_steps"] == 1  # the effective batch grows to 64
    assert rows[32]["gradient_accumulation_steps"] == 1
    baseline = {str(s): v for s, v in result.phases[0].outcomes[0].seed_values.items()}
    # the incoming batch was read back from the baseline, not trained again
    assert rows[4]["seed_values"] == baseline
    decision = batch.decision
    assert decision.case in ("fastest_equivalent", "best", "best_mean_undecided")
    chosen = decision.params["batch_size"]
    if chosen == 64:
        assert "effective batch grows from 32 to 64" in decision.reason
    figures = decision.summary
    assert figures["table"] and "margin" in json.dumps(figures)
