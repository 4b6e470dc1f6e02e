"""Your own training, tuned: the Trainer and SFTTrainer backends, a ``train_fn`` and a
``trainer_factory`` through the baseline and learning-rate phases, from Python and from the
command line; the backends that train alike decide alike."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _demo_quick(tmp_path: Path, backend: str) -> Path:
    """The demo's configuration, smaller: 64 examples, 48 validated, 2 epochs, 2 seeds,
    baseline and learning rate."""
    raw = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    raw["name"] = f"demo_{backend}"
    raw["training"].update(backend=backend, max_train_examples=64, max_validation_examples=48,
                           epochs=2, checkpoints=False)  # fmt: skip
    # one run per seed, as a Trainer trains: stacked adapters draw other dropout masks
    raw["training"].update(seeds_together=False, candidates_together=False)
    raw["objective"].update(seeds=2)
    raw["data"]["tokenization"] = "trl"  # every backend on the tokens SFTTrainer trains
    raw["phases"] = {"run": ["baseline", "learning_rate"],
                     "learning_rate": {"grid": [1.0e-2, 5.0e-2], "extend_edges": 0}}  # fmt: skip
    raw["guardrails"] = {"ignore": ["high_learning_rate"]}
    raw["output_dir"] = str(tmp_path / "out")
    path = tmp_path / f"{backend}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _seed_values(path: Path, phase: str) -> dict[float, dict[str, float]]:
    from hptune import keys
    from hptune.config import load_config

    config = load_config(path)
    study = optuna.load_study(study_name=config.study_name(phase), storage=config.storage_url)
    values: dict[float, dict[str, float]] = {}
    for t in study.trials:  # racing trials add seeds to their rate's
        if t.state == optuna.trial.TrialState.COMPLETE and keys.SEED_VALUES in t.user_attrs:
            rate = t.user_attrs[keys.HPARAMS]["learning_rate"]
            values.setdefault(rate, {}).update(t.user_attrs[keys.SEED_VALUES])
    return values


def _decided(path: Path) -> dict:
    from hptune.config import load_config
    from hptune.record import RunRecord

    return RunRecord(load_config(path)).decided_hparams()[0].to_dict()


def _cli(path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hptune", *args, str(path)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def accelerate_run(demo_path, tmp_path_factory) -> Path:
    path = _demo_quick(tmp_path_factory.mktemp("accelerate"), "accelerate")
    done = _cli(path, "run", "-q")
    assert done.returncode == 0, done.stderr[-3000:]
    return path


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["trainer", "sft"])
def test_the_demo_with_a_trainer_backend_decides_as_the_built_in_loop(
    accelerate_run, tmp_path, backend
) -> None:
    path = _demo_quick(tmp_path, backend)
    done = _cli(path, "run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    ours = _seed_values(accelerate_run, "learning_rate")
    theirs = _seed_values(path, "learning_rate")
    assert ours.keys() == theirs.keys() and len(ours) == 2
    assert _decided(path) == _decided(accelerate_run)
    best = min(min(values.values()) for values in ours.values())
    for rate, values in ours.items():
        # The Trainer computes what the loop computes, bit for bit. TRL's collator and loss
        # differ from it in the last float digits (1e-8, tests/train/test_backend_parity.py);
        # a rate that does not learn (0.05 here: loss 4.6-4.9 against 2.9) amplifies them
        # (measured: 4.892 against 4.660 on seed 0), so those are not held to the tolerance.
        if backend == "sft" and min(values.values()) > 1.2 * best:
            continue
        for seed, value in values.items():
            assert theirs[rate][seed] == pytest.approx(value, rel=1e-4), (rate, seed)
    decided = [line for line in done.stdout.splitlines() if "decision" in line.lower()]
    assert decided, done.stdout[-2000:]
    report = _cli(path, "report")
    assert report.returncode == 0, report.stderr[-2000:]
    html = Path(yaml.safe_load(path.read_text())["output_dir"]) / f"demo_{backend}-report.html"
    assert f"<td>{backend}</td>" in html.read_text()  # the environment names the backend


def test_the_docs_train_fn_sample_tunes_a_phase(demo_path, tmp_path) -> None:
    import hptune
    from examples.own_training import config, make_sft_trainer, make_trainer, train

    training = config.training.model_copy(update={"max_train_examples": 96, "epochs": 1})
    # no racing: each backend's grid on its seeds is this test's subject, not racing
    objective = config.objective.model_copy(update={"max_seeds": len(config.objective.seed_list)})
    config = config.model_copy(update={"output_dir": str(tmp_path / "out"), "training": training,
                                       "objective": objective})  # fmt: skip
    by_function = hptune.run(config.model_copy(update={"name": "fn"}), train_fn=train,
                              quiet=True)  # fmt: skip
    by_factory = hptune.run(config.model_copy(update={"name": "factory"}),
                             trainer_factory=make_trainer, quiet=True)  # fmt: skip
    built = []

    def sft_factory(run):
        built.append(make_sft_trainer(run))
        return built[-1]

    by_sft = hptune.run(config.model_copy(update={"name": "sft"}), trainer_factory=sft_factory,
                        quiet=True)  # fmt: skip
    # TRL tokenized the records and masks the prompt: only the completion carries the loss
    labels = built[0].train_dataset[0]["labels"]
    trained = [label != -100 for label in labels]
    assert not trained[0] and trained[-1] and 0 < sum(trained) < len(labels)
    for result in (by_function, by_factory, by_sft):
        assert [p.phase for p in result.phases] == ["baseline", "learning_rate"]
        assert result.hparams.learning_rate in (5e-3, 1e-2, 5e-2)
    # the factory's Trainer is a plain one built from run.training_arguments(): it trains as
    # the trainer backend and as hptune's loop; the example's loop is its own (another data
    # order, mean-of-batch losses), so its values differ but its phases run the same way
    study = optuna.load_study(study_name="factory.learning_rate",
                              storage=config.storage_url)  # fmt: skip
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) >= 3


def test_the_cli_runs_a_configured_train_fn(demo_path, tmp_path) -> None:
    # the configuration names own_training:train, imported from beside the file
    for name in ("own_training.yaml", "own_training.py"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    path = tmp_path / "own_training.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["output_dir"] = str(tmp_path / "out")
    raw["training"].update(max_train_examples=96, epochs=1)
    raw["phases"]["learning_rate"]["grid"] = [1.0e-2, 5.0e-2]
    path.write_text(yaml.safe_dump(raw))
    done = _cli(path, "run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "learning_rate" in done.stdout
    status = _cli(path, "status")
    assert status.returncode == 0 and status.stdout.count("done") >= 2, status.stdout


def test_a_missing_train_fn_module_is_one_clear_line(demo_path, tmp_path) -> None:
    raw = yaml.safe_load((ROOT / "examples" / "own_training.yaml").read_text())
    raw["training"]["train_fn"] = "not_here:train"
    raw["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    done = _cli(path, "run")
    assert done.returncode == 2
    assert "training.train_fn: cannot import 'not_here'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "hptune.db").exists()  # refused before the storage opened
