"""A user's metric, in a small module beside the configuration, decides the learning rate."""

import json

import optuna
import yaml

from hptune import keys
from hptune.cli import main
from tests.conftest import tiny_config

MODULE = '''
import json, os

def characters(predictions, references):
    """The total length of the generated answers (a stand-in for a task's own score)."""
    value = float(sum(len(p) for p in predictions))
    with open(os.environ["METRIC_LOG"], "a") as log:
        log.write(json.dumps(value) + "\\n")
    return value
'''


def _run(tmp_path, direction: str, monkeypatch) -> dict:
    folder = tmp_path / direction
    folder.mkdir()
    (folder / "length_metric.py").write_text(MODULE)
    monkeypatch.setenv("METRIC_LOG", str(folder / "calls.jsonl"))
    raw = tiny_config(folder)
    raw["objective"].update(metric="length_metric:characters", direction=direction, seeds=1,
                            max_seeds=1)  # fmt: skip
    raw["phases"] = {"run": ["learning_rate"], "learning_rate": {"grid": [1e-4, 5e-2]}}
    raw["guardrails"] = {"ignore": ["high_learning_rate", "single_seed"]}
    (folder / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", "-q", str(folder / "c.yaml")]) == 0
    study = optuna.load_study(study_name="tiny.learning_rate",
                              storage=f"sqlite:///{folder}/out/hptune.db")  # fmt: skip
    values = {t.params["learning_rate"]: t.value for t in study.get_trials()}
    calls = [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]
    return {
        "values": values,
        "calls": calls,
        "decision": json.loads(study.user_attrs[keys.DECISION]),
    }


def test_a_user_metric_decides_the_learning_rate_both_ways(tmp_path, demo_path, monkeypatch):
    up = _run(tmp_path, "maximize", monkeypatch)
    # the values decided on are the function's own return values
    assert set(up["values"].values()) <= set(up["calls"])
    best = max(up["values"], key=up["values"].get)
    assert up["values"][1e-4] != up["values"][5e-2]
    assert up["decision"]["params"]["learning_rate"] == best
    down = _run(tmp_path, "minimize", monkeypatch)
    assert down["values"] == up["values"]  # training is deterministic given the seed
    assert down["decision"]["params"]["learning_rate"] == min(
        down["values"], key=down["values"].get
    )
    assert down["decision"]["params"]["learning_rate"] != best
