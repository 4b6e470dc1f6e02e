"""The pipeline end to end on the real stack: SQLite storage, Accelerate, peft, sacrebleu."""

import io
import json
import sqlite3
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.pipeline import tune
from hptune.train import Runner


@pytest.fixture(scope="module")
def finished(demo_path, tmp_path_factory):
    from tests.conftest import tiny_config

    config = config_from_dict(tiny_config(tmp_path_factory.mktemp("run")))
    events = []
    result = tune(config, progress=events.append)
    return config, result, events


def test_phases_run_in_order_into_one_storage(finished) -> None:
    config, result, _ = finished
    assert [p.phase for p in result.phases] == ["baseline", "learning_rate"]
    assert all(not p.reused for p in result.phases)
    db = Path(config.output_dir) / "hptune.db"
    assert db.is_file()
    names = {s.study_name for s in optuna.get_all_study_summaries(config.storage_url)}
    assert names == {"tiny.baseline", "tiny.learning_rate"}


def test_trials_carry_per_seed_values(finished) -> None:
    config, _, _ = finished
    study = optuna.load_study(study_name="tiny.learning_rate", storage=config.storage_url)
    trials = study.get_trials()
    assert sorted(t.params["learning_rate"] for t in trials) == [1e-4, 5e-3]
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["status"] == "ok"
        assert set(attrs["seed_values"]) == {"0", "1"}
        mean = sum(attrs["seed_values"].values()) / 2
        assert trial.value == pytest.approx(mean) == pytest.approx(attrs["mean"])
        assert attrs["ci95"][0] <= mean <= attrs["ci95"][1]
        assert len(attrs["runs"]) == 2
        # the metric is the loss: no answers are generated (a text metric would fill "score")
        assert attrs["runs"][0]["epochs"][0]["score"] is None
        # one report per seed and epoch: seed 0's value, then the mean of both seeds
        assert trial.intermediate_values == {
            1: pytest.approx(attrs["seed_values"]["0"]),
            2: pytest.approx(mean),
        }
    assert study.user_attrs["hptune.bleu_signature"].startswith("nrefs:1")


def test_decision_is_stored_and_applied(finished) -> None:
    config, result, events = finished
    lr_phase = result.phases[1]
    # 1e-4 barely moves a tiny model in one short epoch; 5e-3 trains.
    assert lr_phase.decision.params == {"learning_rate": 5e-3}
    assert result.hparams.learning_rate == 5e-3
    study = optuna.load_study(study_name="tiny.learning_rate", storage=config.storage_url)
    stored = json.loads(study.user_attrs["hptune.decision"])
    assert stored["params"] == {"learning_rate": 5e-3}
    assert stored["case"] in ("clear_winner", "tie_within_noise")
    # baseline and 1e-4 train (2 seeds, 1 epoch); 5e-3 is the baseline's configuration,
    # read back from the baseline trial instead of trained again
    assert sum(e.get("event") == "epoch" for e in events) == 2 + 2
    reused = [e for e in events if e.get("event") == "reused"]
    assert [(e["phase"], e["source"]) for e in reused] == [("learning_rate", "tiny.baseline#0")]
    trial = next(t for t in study.get_trials() if t.params["learning_rate"] == 5e-3)
    assert trial.user_attrs["reused_from"] == "tiny.baseline#0"


def test_a_second_run_reuses_decisions_without_training(finished) -> None:
    config, result, _ = finished

    class NoTraining(Runner):
        def train(self, *args, **kwargs):
            raise AssertionError("a decided phase must not train again")

    again = tune(config, runner=NoTraining(config))
    assert all(p.reused for p in again.phases)
    assert again.hparams == result.hparams


def test_a_changed_setup_is_refused_not_mixed(finished) -> None:
    config, _, _ = finished
    changed = config.model_copy(
        update={"objective": config.objective.model_copy(update={"seeds": [5, 6]})}
    )
    with pytest.raises(ConfigError, match="seeds"):
        tune(changed)


def test_seeds_trained_together_are_not_mixed_with_seeds_one_after_the_other(finished) -> None:
    config, _, _ = finished
    together = config.model_copy(
        update={"training": config.training.model_copy(update={"seeds_together": True})}
    )
    with pytest.raises(ConfigError, match="another seeds_together"):
        tune(together)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("objective", "max_new_tokens", 3), ("data", "max_length", 80),
     ("training", "early_stopping_patience", 1), ("data", "template", "Q: {question}\nA: ")],
)  # fmt: skip
def test_a_changed_preparation_is_refused_not_reused(finished, section, key, value) -> None:
    config, _, _ = finished
    part = getattr(config, section)
    changed = config.model_copy(update={section: part.model_copy(update={key: value})})
    with pytest.raises(ConfigError, match="another preparation"):
        tune(changed)


def test_optuna_dashboard_opens_the_storage(finished) -> None:
    from optuna_dashboard import wsgi

    config, _, _ = finished
    app = wsgi(config.storage_url)
    environ: dict = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO()
    status = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200")
    names = {s["study_name"] for s in json.loads(body)["study_summaries"]}
    assert names == {"tiny.baseline", "tiny.learning_rate"}
    # and the file is a plain SQLite database any tool can read
    with sqlite3.connect(Path(config.output_dir) / "hptune.db") as db:
        assert db.execute("select count(*) from trials").fetchone()[0] == 3


def test_interrupted_run_resumes_and_retries_the_failed_grid_point(demo_path, tmp_path) -> None:
    from tests.conftest import tiny_config

    raw = tiny_config(tmp_path)
    raw["phases"] = {
        "run": ["learning_rate"],
        "learning_rate": {"grid": [1e-4, 1e-3, 5e-3], "extend_edges": 0},
    }
    raw["objective"]["seeds"] = 1
    config = config_from_dict(raw)

    class CtrlCOnSecondTrial(Runner):
        calls = 0

        def train(self, *args, **kwargs):
            type(self).calls += 1
            if type(self).calls == 2:
                raise KeyboardInterrupt
            return super().train(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        tune(config, runner=CtrlCOnSecondTrial(config))
    study = optuna.load_study(study_name="tiny.learning_rate", storage=config.storage_url)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "FAIL", "WAITING"]  # nothing RUNNING; the third stays queued
    interrupted_lr = study.get_trials()[1].params["learning_rate"]

    result = tune(config)
    trials = study.get_trials()
    assert "RUNNING" not in {t.state.name for t in trials}
    complete = sorted(t.params["learning_rate"] for t in trials if t.state.name == "COMPLETE")
    assert complete == [1e-4, 1e-3, 5e-3]  # the failed point ran again, none twice
    assert interrupted_lr in complete
    assert len(trials) == 4
    assert {row["status"] for row in result.phases[0].decision.summary["table"]} == {"ok"}


def test_each_phase_carries_its_decision_as_a_dashboard_note(finished) -> None:
    from optuna_dashboard import get_note

    config, result, _ = finished
    study = optuna.load_study(study_name="tiny.learning_rate", storage=config.storage_url)
    note = get_note(study)
    assert note.startswith("# tiny.learning_rate")
    assert f"**Decision ({result.phases[1].decision.case}): learning_rate=0.005.**" in note
    header = "| trial | params | status | eval_loss per seed | mean | std | 95% interval |"
    assert header in note


def test_hptune_dashboard_serves_the_storage_on_loopback(finished) -> None:
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import yaml

    config, _, _ = finished
    config_path = Path(config.output_dir) / "dashboard.yaml"
    raw = {"name": "tiny", "model": {"path": "demo://model"},
           "data": {"train": "x.jsonl", "validation": "x.jsonl"},
           "output_dir": config.output_dir}  # fmt: skip
    config_path.write_text(yaml.safe_dump(raw))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "hptune", "dashboard", str(config_path), "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=2) as response:
                    studies = json.loads(response.read())["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                time.sleep(0.2)
        else:
            raise AssertionError("the dashboard never answered")
        by_name = {s["study_name"]: s["study_id"] for s in studies}
        assert set(by_name) == {"tiny.baseline", "tiny.learning_rate"}
        url = f"{base}/api/studies/{by_name['tiny.learning_rate']}?after=0"
        with urllib.request.urlopen(url, timeout=5) as response:
            detail = json.loads(response.read())
        assert "**Decision (" in detail["note"]["body"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_result_is_optuna_shaped(finished) -> None:
    import pytest

    _, result, _ = finished
    assert result.phases["learning_rate"] is result.phases[1]  # by name, or in order
    with pytest.raises(KeyError, match="no phase 'epochs' ran; the phases that ran: baseline, "
                                       "learning_rate"):  # fmt: skip
        result.phases["epochs"]
    study = result.study("learning_rate")
    assert isinstance(study, optuna.Study) and study.study_name == "tiny.learning_rate"
    assert len(study.trials) == len(result.phases["learning_rate"].outcomes)
    params = result.best_params  # TrainingArguments names
    assert params["learning_rate"] == result.hparams.learning_rate
    assert params["per_device_train_batch_size"] == result.hparams.batch_size
    assert params["num_train_epochs"] == result.hparams.epochs
    from transformers import TrainingArguments

    TrainingArguments(output_dir="unused", use_cpu=True, **params)  # every key is one of its
