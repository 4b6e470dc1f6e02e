"""The worker queue (``hptune.pipeline.work_through_queue``) with fake objectives on a real
SQLite storage: no model, no training. The objectives write what hptune's objective writes
(``hptune.keys``), so the queue, the retries, the remedies and the decision see real trials."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

import optuna
import pytest

from hptune import keys
from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.keys import TrialStatus
from hptune.phases import BaselinePhase, LearningRatePhase, Phase
from hptune.pipeline import work_through_queue
from hptune.storage import claim_waiting_trial, open_storage

BASE = HParams(learning_rate=1e-3, batch_size=4, gradient_accumulation_steps=1, epochs=1,
               warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip
GRID = [1e-4, 1e-3, 1e-2]
SEEDS = [0, 1, 2]


def _config(tmp_path, **changes):
    raw = {"name": "q", "model": {"path": "demo://model"},
           "data": {"train": "t.jsonl", "validation": "v.jsonl"},
           "output_dir": str(tmp_path), "heartbeat_seconds": 1, "stale_seconds": 2,
           **changes}  # fmt: skip
    return config_from_dict(raw)


def _study(config, phase: Phase) -> tuple[optuna.storages.BaseStorage, optuna.Study]:
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name=config.study_name(phase.name),
                                sampler=phase.create_sampler(), load_if_exists=True)  # fmt: skip
    return storage, study


def _objective(phase: Phase, value: Callable[[HParams], float], calls: list[HParams]):
    """Records each configuration it is asked to train; values vary a little by seed, and
    each configuration a little differently (an exact shift would have no noise to judge)."""

    def objective(trial: optuna.Trial) -> float:
        hp = phase.suggest(trial, BASE)
        remedy = trial.user_attrs.get(keys.REMEDY)
        if remedy:
            hp = hp.replace(**remedy)
        calls.append(hp)
        trial.set_user_attr(keys.HPARAMS, hp.to_dict())
        v = value(hp)
        if v != v:  # NaN: this configuration diverges
            trial.set_user_attr(keys.STATUS, TrialStatus.DIVERGED)
            raise optuna.TrialPruned("diverged")
        seeds = {str(s): v + 0.01 * s + 0.001 * math.sin(1000 * v + s) for s in SEEDS}
        trial.set_user_attr(keys.STATUS, TrialStatus.OK)
        trial.set_user_attr(keys.SEED_VALUES, seeds)
        return sum(seeds.values()) / len(seeds)

    return objective


def _quadratic(hp: HParams) -> float:
    return 2.0 + abs(hp.learning_rate - 1e-3) * 100


def test_each_grid_point_runs_once_and_queued_plus_running_is_what_remains(tmp_path) -> None:
    config = _config(tmp_path)
    phase = LearningRatePhase(GRID)
    storage, study = _study(config, phase)
    calls: list[HParams] = []
    train = _objective(phase, _quadratic, calls)
    seen: list[tuple[int, int]] = []

    def objective(trial: optuna.Trial) -> float:
        trials = study.get_trials(deepcopy=False)
        pending = sum(t.state.name in ("WAITING", "RUNNING") for t in trials)
        seen.append((pending, phase.n_remaining(trials)))  # the queue's invariant
        return train(trial)

    result = work_through_queue(config, storage, study, phase, BASE, objective)
    assert sorted(hp.learning_rate for hp in calls) == GRID
    assert seen == [(3, 3), (2, 2), (1, 1)]
    assert result.decision.params == {"learning_rate": 1e-3}
    assert study.user_attrs[keys.DECISION] == result.decision.to_json()
    # another worker arriving later reads the decision; it trains nothing
    again = work_through_queue(config, storage, study, phase, BASE, objective)
    assert again.decision == result.decision and len(calls) == 3


def test_a_failing_trial_is_retried_until_its_retries_are_used_up(tmp_path) -> None:
    config = _config(tmp_path, max_retries=2)
    phase = LearningRatePhase(GRID, max_retries=config.max_retries)
    storage, study = _study(config, phase)
    calls: list[HParams] = []
    train = _objective(phase, _quadratic, calls)

    def objective(trial: optuna.Trial) -> float:
        if phase.suggest(trial, BASE).learning_rate == 1e-2:
            calls.append(BASE)
            raise RuntimeError("a crash in training")
        return train(trial)

    crashes = 0
    while True:  # an error ends the worker; running it again goes on with the queue
        try:
            result = work_through_queue(config, storage, study, phase, BASE, objective)
            break
        except RuntimeError:
            crashes += 1
            assert crashes <= 3
    states = Counter(
        (t.params["learning_rate"], t.state.name) for t in study.get_trials(deepcopy=False)
    )
    assert states == {(1e-4, "COMPLETE"): 1, (1e-3, "COMPLETE"): 1, (1e-2, "FAIL"): 3}
    assert crashes == 3  # the first run and its 2 retries
    assert result.decision.params == {"learning_rate": 1e-3}
    assert [o.params["learning_rate"] for o in result.outcomes] == [1e-4, 1e-3]


def test_an_interrupted_trial_runs_again_without_using_up_a_retry(tmp_path) -> None:
    config = _config(tmp_path, max_retries=0)
    phase = LearningRatePhase(GRID, max_retries=0)
    storage, study = _study(config, phase)
    calls: list[HParams] = []
    train = _objective(phase, _quadratic, calls)
    interrupted: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        lr = phase.suggest(trial, BASE).learning_rate
        if lr == 1e-3 and not interrupted:
            interrupted.append(lr)
            raise KeyboardInterrupt
        return train(trial)

    with pytest.raises(KeyboardInterrupt):
        work_through_queue(config, storage, study, phase, BASE, objective)
    (stopped,) = [t for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL"]
    assert keys.stored_status(stopped) == TrialStatus.INTERRUPTED
    result = work_through_queue(config, storage, study, phase, BASE, objective)
    assert sorted(hp.learning_rate for hp in calls) == GRID  # 1e-3 ran again, with 0 retries
    assert result.decision.params == {"learning_rate": 1e-3}


def test_a_dead_worker_s_trial_goes_stale_and_runs_again(tmp_path) -> None:
    config = _config(tmp_path, stale_seconds=3)
    phase = BaselinePhase()
    storage, study = _study(config, phase)
    study.enqueue_trial({})
    dead = claim_waiting_trial(study, storage)  # claimed by a worker that then died
    assert dead is not None and dead.number == 0
    calls: list[HParams] = []  # its heartbeat stands still: failed after 3 s of watching
    started = time.monotonic()
    result = work_through_queue(config, storage, study, phase, BASE,
                                _objective(phase, _quadratic, calls))  # fmt: skip
    assert time.monotonic() - started >= 3  # stale_seconds, not 2 heartbeats
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert states == ["FAIL", "COMPLETE"]
    assert study.user_attrs[keys.STALE_TRIALS] == [0]
    assert len(calls) == 1 and result.decision.case == "baseline"


def test_a_diverged_trial_runs_again_with_the_remedy_and_the_decision_carries_it(
    tmp_path,
) -> None:
    config = _config(tmp_path, diagnostics={"retry_diverged": True})
    phase = BaselinePhase()
    storage, study = _study(config, phase)
    calls: list[HParams] = []

    def value(hp: HParams) -> float:
        return float("nan") if hp.learning_rate >= 1e-3 else 2.0  # the preset rate diverges

    result = work_through_queue(config, storage, study, phase, BASE,
                                _objective(phase, value, calls))  # fmt: skip
    assert [hp.learning_rate for hp in calls] == [1e-3, pytest.approx(1e-4)]
    remedy = study.get_trials(deepcopy=False)[1]
    assert remedy.user_attrs[keys.REMEDY_OF] == 0
    assert result.decision.params["learning_rate"] == pytest.approx(1e-4)
    assert "divergence remedy" in result.decision.reason


def test_the_learning_rate_phase_keeps_a_diverged_rate_as_evidence(tmp_path) -> None:
    config = _config(tmp_path, diagnostics={"retry_diverged": True})
    phase = LearningRatePhase(GRID)
    storage, study = _study(config, phase)
    calls: list[HParams] = []

    def value(hp: HParams) -> float:
        return float("nan") if hp.learning_rate == 1e-2 else _quadratic(hp)

    result = work_through_queue(config, storage, study, phase, BASE,
                                _objective(phase, value, calls))  # fmt: skip
    assert len(calls) == 3  # no remedy trial: a diverged rate says the rate is too high
    statuses = {o.params["learning_rate"]: o.status for o in result.outcomes}
    assert statuses[1e-2] == TrialStatus.DIVERGED


def test_a_regularization_rate_probe_that_diverges_gets_no_remedy(tmp_path) -> None:
    """The regularization phase tries each candidate at x0.5, x1 and x2 the incoming rate: a
    probe that diverges is recorded as diverged, never run again at a tenth of its rate (that
    rate is another probe's, or below the local set)."""
    from hptune.phases import RegularizationPhase

    config = _config(tmp_path, diagnostics={"retry_diverged": True})
    phase = RegularizationPhase(n_trials=2, incoming=BASE)
    storage, study = _study(config, phase)

    def objective(trial: optuna.Trial) -> float:
        hp = phase.suggest(trial, BASE)
        trial.set_user_attr(keys.HPARAMS, hp.to_dict())
        if hp.learning_rate != BASE.learning_rate:
            trial.set_user_attr(keys.STATUS, TrialStatus.DIVERGED)
            raise optuna.TrialPruned("diverged")
        seeds = {"0": 2.0, "1": 2.1, "2": 1.9}
        trial.set_user_attr(keys.STATUS, TrialStatus.OK)
        trial.set_user_attr(keys.SEED_VALUES, seeds)
        return sum(seeds.values()) / 3

    result = work_through_queue(config, storage, study, phase, BASE, objective)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2  # the incoming configuration and one probe: no remedy
    assert not any(keys.REMEDY in t.user_attrs for t in trials)
    assert result.decision.params == {}  # the incoming configuration stays


def test_a_batch_that_grows_the_effective_batch_has_its_rate_re_tuned(tmp_path) -> None:
    """Batch 8 over an effective batch of 4: once both batches trained, batch 8 is probed at
    x0.5 and x2 the rate (marked as probes); x2 diverges and is not remedied; batch 8 at half
    the rate is best, and the decision carries that rate."""
    from hptune.phases import BatchSizePhase

    config = _config(tmp_path, diagnostics={"retry_diverged": True})
    phase = BatchSizePhase(BASE, candidates=[4, 8], n_trials=2)
    storage, study = _study(config, phase)
    calls: list[HParams] = []

    def value(hp: HParams) -> float:
        if hp.batch_size == 8 and hp.learning_rate > BASE.learning_rate:
            return float("nan")
        return 2.1 if hp.batch_size == 4 else 2.0 + (hp.learning_rate - 5e-4) * 1000

    result = work_through_queue(config, storage, study, phase, BASE,
                                _objective(phase, value, calls))  # fmt: skip
    assert [(hp.batch_size, hp.learning_rate) for hp in calls] == [
        (4, 1e-3), (8, 1e-3), (8, 5e-4), (8, 2e-3)]  # fmt: skip
    trials = study.get_trials(deepcopy=False)
    assert [keys.RATE_PROBE in t.user_attrs for t in trials] == [False, False, True, True]
    assert not any(keys.REMEDY in t.user_attrs for t in trials)
    assert result.decision.params["learning_rate"] == 5e-4
    assert result.decision.params["batch_size"] == 8
    from optuna_dashboard import get_note

    note = get_note(study)  # each batch's best rate, in the dashboard
    assert "| candidate | its best learning rate | seed mean |" in note
    assert "| batch 8 | 0.0005 (x0.5) |" in note and "| batch 4 | 0.001 (x1) |" in note


def test_a_failed_rate_probe_is_retried_as_a_probe(tmp_path) -> None:
    """A probe that fails (an error, not a divergence) runs again, still marked as a probe."""
    from hptune.phases import BatchSizePhase

    config = _config(tmp_path)
    phase = BatchSizePhase(BASE, candidates=[4, 8], n_trials=2, rate_factors=[1.0, 2.0])
    storage, study = _study(config, phase)
    calls: list[HParams] = []
    fails = [True]

    def value(hp: HParams) -> float:
        if hp.learning_rate > BASE.learning_rate and fails:
            fails.pop()
            raise RuntimeError("a worker's error")
        return 2.0 + hp.batch_size / 100

    objective = _objective(phase, value, calls)
    with pytest.raises(RuntimeError):  # an error ends the worker
        work_through_queue(config, storage, study, phase, BASE, objective)
    work_through_queue(config, storage, study, phase, BASE, objective)  # it goes on
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert [keys.RATE_PROBE in t.user_attrs for t in trials] == [False, False, True, True]
