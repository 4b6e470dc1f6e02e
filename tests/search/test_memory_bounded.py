"""The memory-bounded batch sampler in plain Optuna studies (real ask/tell, real storages)."""

import optuna
import pytest

from hptune.search import MemoryBoundedBatchSampler, oom_boundary, record_out_of_memory

CANDIDATES = [1, 2, 4, 8, 16, 32, 64]
MB = 2**20


def predict(batch: int) -> float:
    return 100 * MB + batch * 10 * MB  # 100 MB fixed, 10 MB per example


def make_sampler(**kwargs) -> MemoryBoundedBatchSampler:
    options = {"predict_bytes": predict, "memory_limit_bytes": 300 * MB, "safety_margin": 1.0}
    return MemoryBoundedBatchSampler(CANDIDATES, **{**options, **kwargs})


def ask_batch(study: optuna.Study) -> tuple[optuna.Trial, int]:
    trial = study.ask()
    return trial, trial.suggest_categorical("batch_size", CANDIDATES)


def test_proposes_only_predicted_fits_largest_first() -> None:
    # 300 MB fits 100 + 16 x 10 = 260 MB but not 100 + 32 x 10 = 420 MB
    study = optuna.create_study(sampler=make_sampler())
    proposed = []
    for _ in range(5):
        trial, batch = ask_batch(study)
        proposed.append(batch)
        study.tell(trial, 1.0)
    assert proposed == [16, 8, 4, 2, 1]
    assert all(predict(b) <= 300 * MB for b in proposed)


def test_safety_margin_shrinks_what_fits() -> None:
    study = optuna.create_study(sampler=make_sampler(safety_margin=0.8))  # 240 MB usable
    _, batch = ask_batch(study)
    assert batch == 8


def test_after_an_oom_no_later_proposal_reaches_it(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'oom.db'}"
    study = optuna.create_study(study_name="b", storage=storage, sampler=make_sampler())
    trial, batch = ask_batch(study)
    assert batch == 16
    record_out_of_memory(trial, batch, "CUDA out of memory")  # as an objective would
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert oom_boundary(study.get_trials()) == 16

    # another worker with its own sampler learns the boundary from the storage
    other = optuna.load_study(study_name="b", storage=storage, sampler=make_sampler())
    seen = []
    for s in (study, other, study, other):
        trial, batch = ask_batch(s)
        seen.append(batch)
        s.tell(trial, 1.0)
    assert seen == [8, 4, 2, 1]
    assert max(seen) < 16


def test_a_second_oom_moves_the_boundary_down() -> None:
    study = optuna.create_study(sampler=make_sampler(memory_limit_bytes=None))
    for expected in (64, 32):
        trial, batch = ask_batch(study)
        assert batch == expected
        record_out_of_memory(trial, batch)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    _, batch = ask_batch(study)
    assert batch == 16


def test_nothing_fits_is_a_clear_error() -> None:
    study = optuna.create_study(sampler=make_sampler(memory_limit_bytes=50 * MB))
    with pytest.raises(ValueError, match="no batch size fits: batch 1 needs"):
        ask_batch(study)


def test_int_distribution_and_other_parameters() -> None:
    study = optuna.create_study(sampler=make_sampler())
    trial = study.ask()
    batch = trial.suggest_int("batch_size", 1, 12)
    lr = trial.suggest_float("lr", 1e-5, 1e-3, log=True)
    assert batch == 8  # the largest candidate inside both the range and the memory
    assert 1e-5 <= lr <= 1e-3  # left to the base sampler


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="candidates"):
        MemoryBoundedBatchSampler([])
    with pytest.raises(ValueError, match="safety_margin"):
        MemoryBoundedBatchSampler([4], safety_margin=0)
    with pytest.raises(ValueError, match="memory_limit_bytes"):
        MemoryBoundedBatchSampler([4], memory_limit_bytes=-1)
