"""Reading a run back (``hptune.record``) from a real SQLite storage, trials told through
``ask``/``tell`` with the attributes hptune's objective writes."""

from __future__ import annotations

import optuna
import pytest

from hptune import keys, status
from hptune.config import config_from_dict
from hptune.exceptions import ConfigError, NoStorageYet
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.phases import Decision
from hptune.record import RunRecord, decision_outcomes, finished_outcomes
from hptune.storage import open_storage

HP = HParams(learning_rate=1e-4, batch_size=4, gradient_accumulation_steps=1, epochs=1,
             warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip


def _config(tmp_path):
    raw = {
        "name": "rec",
        "model": {"path": "demo://model"},
        "data": {"train": "t.jsonl", "validation": "v.jsonl"},
        "output_dir": str(tmp_path),
        "objective": {"seeds": [0, 1]},
        "phases": {"run": ["baseline", "learning_rate"]},
    }
    return config_from_dict(raw)


def _tell(study: optuna.Study, lr: float, status: TrialStatus, state: str) -> None:
    trial = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-6, 1.0)})
    trial.set_user_attr(keys.STATUS, status)
    trial.set_user_attr(keys.HPARAMS, HP.replace(learning_rate=lr).to_dict())
    if status == TrialStatus.OK:
        trial.set_user_attr(keys.SEED_VALUES, {"0": 2.0, "1": 2.1})
        trial.set_user_attr(keys.RUNS, [{"seed": 0, "epochs": []}, {"seed": 1, "epochs": []}])
        study.tell(trial, 2.05)
    else:
        study.tell(trial, state=getattr(optuna.trial.TrialState, state))


def test_nothing_ran_yet_is_its_own_error_and_every_phase_is_pending(tmp_path) -> None:
    config = _config(tmp_path)
    with pytest.raises(NoStorageYet, match="no storage at"):
        RunRecord(config)
    assert issubclass(NoStorageYet, ConfigError)  # the command prints it without a traceback
    assert [(r.phase, r.state) for r in status(config)] == [
        ("baseline", "pending"),
        ("learning_rate", "pending"),
    ]
    assert not (tmp_path / "rec.db").exists()


def test_one_definition_of_a_decision_s_evidence(tmp_path) -> None:
    config = _config(tmp_path)
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name=config.study_name("learning_rate"))
    _tell(study, 1e-4, TrialStatus.OK, "COMPLETE")
    _tell(study, 1e-3, TrialStatus.PRUNED, "PRUNED")
    _tell(study, 1e-2, TrialStatus.OOM, "FAIL")
    _tell(study, 1e-1, TrialStatus.FAILED, "FAIL")  # retried before any decision
    trials = study.get_trials(deepcopy=False)
    assert [o.status for o in decision_outcomes(trials)] == ["ok", "pruned", "oom"]
    assert [o.status for o in finished_outcomes(trials)] == ["ok", "pruned", "oom", "failed"]
    stored = RunRecord(config).phase("learning_rate")
    assert stored.state == "in progress" and stored.decision is None
    assert [o.number for o in stored.outcomes] == [0, 1, 2]


def test_a_trained_configuration_is_found_only_with_the_same_seeds(tmp_path) -> None:
    config = _config(tmp_path)
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name=config.study_name("baseline"))
    _tell(study, 1e-4, TrialStatus.OK, "COMPLETE")
    record = RunRecord(config)
    found = record.find_trained(HP)
    assert found is not None and found[0] == "rec.baseline#0" and len(found[1]) == 2
    assert record.find_trained(HP.replace(learning_rate=2e-4)) is None
    other_seeds = config.model_copy(update={"objective": config.objective.model_copy(
        update={"seeds": [0, 1, 2]})})  # fmt: skip
    assert RunRecord(other_seeds).find_trained(HP) is None


def _tell_runs(study: optuna.Study, hp: HParams, runs: list[dict]) -> None:
    trial = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-6, 1.0)})
    trial.set_user_attr(keys.STATUS, TrialStatus.OK)
    trial.set_user_attr(keys.HPARAMS, hp.to_dict())
    trial.set_user_attr(keys.SEED_VALUES, {str(r["seed"]): 2.0 for r in runs})
    trial.set_user_attr(keys.RUNS, runs)
    study.tell(trial, 2.0)


def _run(seed: int, losses: list[float], **flags) -> dict:
    epochs = [{"epoch": i + 1, "train_loss": 1.0, "eval_loss": v, "score": None,
               "learning_rate": 1e-4} for i, v in enumerate(losses)]  # fmt: skip
    return {"seed": seed, "epochs": epochs, "seconds": 4.0, "examples_per_second": 8.0,
            **flags}  # fmt: skip


def test_a_constant_rate_run_is_read_at_fewer_epochs_from_a_longer_one(tmp_path) -> None:
    config = _config(tmp_path)
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name=config.study_name("baseline"))
    constant = HP.replace(scheduler="constant_with_warmup", warmup_ratio=0.0, epochs=4)
    # seed 1 diverged at validation in its 2nd epoch: its shorter runs diverge there too
    _tell_runs(study, constant, [_run(0, [2.0, 1.5, 1.2, 1.3]),
                                 _run(1, [2.1, float("nan")], diverged=True)])  # fmt: skip
    found = RunRecord(config).find_trained(constant.replace(epochs=3))
    assert found is not None and found[0] == "rec.baseline#0 (its first 3 of 4 epochs)"
    first, second = found[1]
    assert [e["eval_loss"] for e in first["epochs"]] == [2.0, 1.5, 1.2]
    assert first["seconds"] == 3.0 and not first["diverged"]
    assert second["diverged"] and len(second["epochs"]) == 2
    at_two = RunRecord(config).find_trained(constant.replace(epochs=2))
    assert at_two is not None and at_two[1][1]["diverged"]  # it diverged in its 2nd epoch
    assert not at_two[1][0]["diverged"] and len(at_two[1][0]["epochs"]) == 2
    # a decaying schedule's shorter run is another run: never read off a longer one
    linear = constant.replace(scheduler="linear")
    _tell_runs(study, linear, [_run(0, [2.0, 1.5, 1.2, 1.3]), _run(1, [2.1, 1.6, 1.3, 1.2])])
    assert RunRecord(config).find_trained(linear.replace(epochs=3)) is None
    # nor a constant rate with a warmup ratio (its warmup is a share of the length)
    warm = constant.replace(warmup_ratio=0.1)
    _tell_runs(study, warm, [_run(0, [2.0, 1.5, 1.2, 1.3]), _run(1, [2.1, 1.6, 1.3, 1.2])])
    assert RunRecord(config).find_trained(warm.replace(epochs=3)) is None


def test_decided_hparams_apply_each_decision_and_refuse_an_undecided_phase(tmp_path) -> None:
    config = _config(tmp_path)
    storage = open_storage(config)
    for phase, params in (("baseline", {}), ("learning_rate", {"learning_rate": 3e-4})):
        study = optuna.create_study(storage=storage, study_name=config.study_name(phase))
        study.set_user_attr(keys.SETUP, {"base_hparams": HP.to_dict()})
        if phase == "baseline":
            study.set_user_attr(
                keys.DECISION, Decision(phase, params, 2.0, "baseline", "").to_json()
            )
    with pytest.raises(ConfigError, match="'learning_rate' has no decision yet"):
        RunRecord(config).decided_hparams()
    study = optuna.load_study(study_name=config.study_name("learning_rate"), storage=storage)
    decision = Decision("learning_rate", {"learning_rate": 3e-4}, 1.9, "clear_winner", "")
    study.set_user_attr(keys.DECISION, decision.to_json())
    hp, decisions = RunRecord(config).decided_hparams()
    assert hp == HP.replace(learning_rate=3e-4)
    assert decisions["learning_rate"] == decision
    assert [r.state for r in status(config)] == ["done", "done"]
