"""The storage layer on real Optuna storages: claiming, heartbeats, stale trials, locks."""

import re
import threading
import time
import warnings

import optuna
import pytest

from hptune import keys, stored
from hptune.config import config_from_dict
from hptune.exceptions import ConfigError, StaleResultDropped
from hptune.storage import (
    Heartbeat,
    StaleWatch,
    claim_waiting_trial,
    fail_dead_trials,
    heartbeat_storage,
    open_storage,
    queue_lock,
    worker_id,
)


def _config(tmp_path, storage=None):
    raw = {"name": "s", "model": {"path": "demo://model"}, "output_dir": str(tmp_path),
           "data": {"train": "t.jsonl", "validation": "v.jsonl"}}  # fmt: skip
    if storage:
        raw["storage"] = storage
    return config_from_dict(raw)


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def setup(request, tmp_path):
    storage_url = {
        "sqlite": None,
        "journal": f"journal://{tmp_path / 'j.log'}",
        "postgresql": request.getfixturevalue("postgres_url")
        if request.param == "postgresql"
        else None,
    }[request.param]
    config = _config(tmp_path, storage_url)
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name="s.x")
    return config, storage, study


def test_claims_under_the_queue_lock_never_hand_out_a_trial_twice(setup) -> None:
    # Under the lock, as the worker loop claims: SQLite has no row locks, so a bare
    # compare-and-set there can hand one trial to two threads (this test caught it).
    config, storage, study = setup
    for x in range(20):
        study.enqueue_trial({"x": x})
    claimed: list[int] = []

    def claim_all() -> None:
        while True:
            with queue_lock(config, storage, "s.x"):
                trial = claim_waiting_trial(study, storage)
            if trial is None:
                return
            claimed.append(stored.trial_id(trial))

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted({t._trial_id for t in study.trials})  # 20, each once
    assert {t.state.name for t in study.trials} == {"RUNNING"}


def test_a_claim_is_optuna_s_ask_for_the_oldest_queued_trial(setup) -> None:
    _, storage, study = setup
    assert claim_waiting_trial(study, storage) is None  # nothing queued: ask() is not called
    assert study.trials == []  # (it would have created an empty trial)
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": 2.0})
    trial = claim_waiting_trial(study, storage)
    assert isinstance(trial, optuna.Trial) and trial.number == 0
    assert trial.suggest_float("x", 0.0, 3.0) == 1.0  # the queued parameters
    assert trial.user_attrs[keys.WORKER] == worker_id()  # the trial's own copy knows it too
    assert keys.HEARTBEAT in storage.get_trial(stored.trial_id(trial)).system_attrs
    assert [t.state.name for t in study.trials] == ["RUNNING", "WAITING"]


def test_only_trials_whose_heartbeat_stood_still_for_the_grace_period_are_failed(setup) -> None:
    _, storage, study = setup
    study.enqueue_trial({"x": 1})
    study.enqueue_trial({"x": 2})
    live, dead = (stored.trial_id(claim_waiting_trial(study, storage)) for _ in range(2))
    watch = StaleWatch(grace_seconds=0.6)
    with Heartbeat(storage, live, interval=0.2):
        assert fail_dead_trials(study, storage, watch) == []  # first look: nothing judged
        failed = []
        for _ in range(5):
            time.sleep(0.2)  # five beats; the live trial's heartbeat keeps changing
            failed += fail_dead_trials(study, storage, watch)
        assert failed == [1]  # the dead one stood still for over 0.6 s
    states = {t._trial_id: t.state.name for t in study.trials}
    assert states == {live: "RUNNING", dead: "FAIL"}
    assert study.user_attrs[keys.STALE_TRIALS] == [1]


class _CompletesFirst:
    """The storage, except that the trial's own worker completes it just before the
    failure is written: the race a stale judgement runs against a live worker."""

    def __init__(self, storage) -> None:
        self.storage = storage

    def __getattr__(self, name: str):
        return getattr(self.storage, name)

    def set_trial_state_values(self, trial_id, state, values=None) -> bool:
        if state == optuna.trial.TrialState.FAIL:
            self.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.COMPLETE, [1.0])
        return self.storage.set_trial_state_values(trial_id, state, values)


def test_a_trial_that_completes_as_it_is_failed_stale_is_never_listed_stale(setup) -> None:
    _, storage, study = setup
    study.enqueue_trial({"x": 1})
    claimed = claim_waiting_trial(study, storage)
    assert claimed is not None
    late = stored.trial_id(claimed)
    watch = StaleWatch(grace_seconds=0.0)
    assert fail_dead_trials(study, storage, watch) == []  # first look: nothing judged
    time.sleep(0.01)
    assert fail_dead_trials(study, _CompletesFirst(storage), watch) == []
    assert storage.get_trial(late).state.name == "COMPLETE"  # the failure was refused
    assert keys.STALE_TRIALS not in study.user_attrs
    assert not [k for k in storage.get_trial(late).user_attrs if "stale" in k]


def test_a_trial_failed_under_its_worker_is_dropped_not_crashing(setup) -> None:
    from hptune.pipeline import run_claimed

    _, storage, study = setup
    study.enqueue_trial({"x": 1.0})
    trial = claim_waiting_trial(study, storage)
    assert trial is not None

    def objective(trial: optuna.Trial) -> float:
        # another worker thinks it died: it has watched its heartbeat stand still too long
        watch = StaleWatch(grace_seconds=-1, clock=lambda: 0.0)
        fail_dead_trials(study, storage, watch)  # its first look
        fail_dead_trials(study, storage, watch)
        trial.set_user_attr("late", True)  # the storage refuses writes to a finished trial
        return 1.0

    with pytest.warns(StaleResultDropped, match="failed by another worker"):
        run_claimed(study, storage, trial, objective, heartbeat_seconds=5)
    assert study.trials[0].state.name == "FAIL"


def test_the_queue_lock_excludes_other_holders(setup) -> None:
    config, storage, _ = setup
    order: list[str] = []

    def hold(tag: str) -> None:
        with queue_lock(config, storage, "s.x"):
            order.append(f"{tag} in")
            time.sleep(0.2)
            order.append(f"{tag} out")

    threads = [threading.Thread(target=hold, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order[0].endswith("in") and order[1] == order[0].replace("in", "out")


def test_reading_commands_never_create_a_storage(tmp_path) -> None:
    config = _config(tmp_path)
    with pytest.raises(ConfigError, match="run 'hptune run' on this configuration first"):
        open_storage(config, must_exist=True)
    assert not (tmp_path / "hptune.db").exists()
    journal = _config(tmp_path, f"journal://{tmp_path / 'none.log'}")
    with pytest.raises(ConfigError, match="no storage at"):
        open_storage(journal, must_exist=True)


def test_a_missing_database_driver_names_the_install(tmp_path) -> None:
    config = _config(tmp_path, "postgresql+nosuchdriver://u:pw@127.0.0.1/db")
    with warnings.catch_warnings(), pytest.raises(ConfigError) as error:
        warnings.simplefilter("ignore")
        open_storage(config)
    assert "u:***@" in str(error.value) and ":pw@" not in str(error.value)


def test_postgresql_urls_name_psycopg_3_whatever_the_sqlalchemy_version() -> None:
    from hptune.storage import driver_url

    assert driver_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert driver_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"  # kept
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"


def test_mysql_is_refused_with_what_to_use_instead(tiny_config_dict) -> None:
    from hptune.config import config_from_dict
    from hptune.exceptions import ConfigError

    tiny_config_dict["storage"] = "mysql://u:secret@h/db"
    with pytest.raises(ConfigError, match="MySQL and MariaDB are not supported") as refused:
        config_from_dict(tiny_config_dict)
    assert "postgresql://user@host/db" in str(refused.value)
    assert "secret" not in str(refused.value) and "mysql://u:***@h/db" in str(refused.value)


def _hold_queue_lock(url: str, out_dir: str, tag: str, rounds: int) -> None:
    """In its own process: take the queue lock ``rounds`` times; inside, create a marker
    file exclusively (failing if the other process is inside too) and remove it."""
    import os
    from pathlib import Path

    config = _config(Path(out_dir), url)
    storage = open_storage(config)
    marker = Path(out_dir) / "inside"
    for _ in range(rounds):
        with queue_lock(config, storage, "s.x"):
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                (Path(out_dir) / f"both-inside-{tag}").touch()
                continue
            time.sleep(0.002)
            marker.unlink()


def test_two_processes_never_hold_the_journal_queue_lock_together(tmp_path) -> None:
    import multiprocessing

    url = f"journal://{tmp_path / 'j.log'}"
    optuna.create_study(storage=open_storage(_config(tmp_path, url)), study_name="s.x")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hold_queue_lock, args=(url, str(tmp_path), tag, 150))
               for tag in "ab"]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sorted(p.name for p in tmp_path.glob("both-inside-*")) == []
    assert not list(tmp_path.glob("*.queue.lock"))  # released every time


def test_a_failed_heartbeat_write_is_logged_counted_and_retried(caplog) -> None:
    import logging

    class Flaky:
        """A storage that refuses the first two writes (a passing database error)."""

        def __init__(self) -> None:
            self.calls = 0

        def set_trial_system_attr(self, trial_id: int, key: str, value: object) -> None:
            self.calls += 1
            if self.calls <= 2:
                raise RuntimeError("connection reset")

    storage = Flaky()
    with (
        caplog.at_level(logging.WARNING, logger="hptune"),
        Heartbeat(storage, 7, interval=0.01) as beat,  # type: ignore[arg-type]
    ):
        deadline = time.monotonic() + 5
        while storage.calls < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert beat.failed_writes == 2 and storage.calls >= 4  # later beats went on
    said = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
    assert len(said) == 2 and "heartbeat of trial 7 not written (RuntimeError" in said[0]


def test_a_beat_held_back_is_measured_and_told(caplog) -> None:
    import logging

    class Slow:
        """A storage whose second write takes 0.5 s (a busy database, a held lock)."""

        def __init__(self) -> None:
            self.calls = 0

        def set_trial_system_attr(self, trial_id: int, key: str, value: object) -> None:
            self.calls += 1
            if self.calls == 2:
                time.sleep(0.5)

    storage = Slow()
    with (
        caplog.at_level(logging.WARNING, logger="hptune"),
        Heartbeat(storage, 7, interval=0.05) as beat,  # type: ignore[arg-type]
    ):
        deadline = time.monotonic() + 5
        while storage.calls < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert beat.longest_gap >= 0.5
    late = [r.getMessage() for r in caplog.records if "after the previous one" in r.getMessage()]
    assert late and re.match(r"heartbeat of trial 7 written 0\.[5-9] s after the previous", late[0])


def test_a_journal_heartbeat_beats_while_the_training_thread_holds_its_storage(
    tmp_path,
) -> None:
    """Optuna's journal storage serves one thread at a time: a long read by the training
    thread (held here for 1.5 s) must not hold the beats back."""
    config = _config(tmp_path, f"journal://{tmp_path}/j.log")
    storage = open_storage(config)
    study = optuna.create_study(storage=storage, study_name="beats")
    trial_id = stored.trial_id(study.ask())
    beats = heartbeat_storage(config, storage)
    assert beats is not storage
    with Heartbeat(beats, trial_id, interval=0.1), storage._thread_lock:  # a long read
        time.sleep(1.5)
        seen = open_storage(config).get_trial_system_attrs(trial_id).get(keys.HEARTBEAT)
    assert seen is not None and seen[0] >= 5  # beats went on meanwhile
    assert heartbeat_storage(_config(tmp_path), storage) is storage  # SQLite: shared


def test_a_peer_stamping_the_fresh_database_first_does_not_fail_the_worker(
    tmp_path, monkeypatch
) -> None:
    # The interleaving CI met: a reading peer outside hptune's lock (optuna-dashboard, a
    # script) writes Optuna's schema stamp after the worker found none and before it wrote its
    # own; the worker's insert then hits the unique constraint.
    import sqlite3

    from alembic.runtime.migration import HeadMaintainer

    config = _config(tmp_path)
    insert_version = HeadMaintainer._insert_version
    raced = []

    def peer_stamps_first(self, version: str) -> None:
        if not raced:
            raced.append(version)
            with sqlite3.connect(tmp_path / "hptune.db") as peer:
                peer.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (version,))
        insert_version(self, version)

    monkeypatch.setattr(HeadMaintainer, "_insert_version", peer_stamps_first)
    storage = open_storage(config)
    assert len(raced) == 1
    study = optuna.create_study(study_name="after-the-race", storage=storage)
    assert optuna.load_study(study_name="after-the-race", storage=storage)._study_id == (
        study._study_id
    )
