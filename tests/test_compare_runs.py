"""scripts/compare_runs.py: what two runs' studies differ in, in words."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_runs.py"
spec = importlib.util.spec_from_file_location("compare_runs", SCRIPT)
assert spec is not None and spec.loader is not None
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def _run(value: float, case: str = "best") -> dict:
    trial = {"params": {"learning_rate": 1e-3}, "status": "ok",
             "seed_values": {"0": value, "1": 2.0}}  # fmt: skip
    return {"demo.learning_rate": {"trials": [trial], "decision": {"case": case, "params": {}}}}


def test_the_same_runs_have_no_difference_and_any_change_is_named() -> None:
    assert compare_runs.differences(_run(1.5), _run(1.5), 0.0) == []
    (changed,) = compare_runs.differences(_run(1.5), _run(1.5000001), 0.0)
    assert changed.startswith("demo.learning_rate#0: seed values")
    assert compare_runs.differences(_run(1.5), _run(1.5000001), 1e-6) == []
    (decided,) = compare_runs.differences(_run(1.5), _run(1.5, case="lowest"), 0.0)
    assert "decision" in decided


def test_a_storage_is_read_with_optuna_alone_decision_included(tmp_path) -> None:
    """The decision is stored as JSON text (hptune.pipeline._decide); it is read as such."""
    import json

    import optuna

    storage = tmp_path / "hptune.db"
    study = optuna.create_study(study_name="demo.baseline", storage=f"sqlite:///{storage}")
    trial = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-1)})
    trial.set_user_attr("status", "ok")
    trial.set_user_attr("seed_values", {"0": 2.0, "1": 2.5})
    study.tell(trial, 2.25)
    decision = {"case": "best", "params": {"learning_rate": 0.01}, "reason": "..."}
    study.set_user_attr("hptune.decision", json.dumps(decision))
    (read,) = compare_runs.read(storage).values()
    assert read["decision"] == {"case": "best", "params": {"learning_rate": 0.01}}
    assert read["trials"] == [{"params": trial.params, "status": "ok",
                               "seed_values": {"0": 2.0, "1": 2.5}}]  # fmt: skip
