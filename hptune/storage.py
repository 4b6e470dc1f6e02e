"""Where a run's studies live: opening the storage, one queue lock per study, heartbeats.

Three backends, chosen by the ``storage`` URL:

* ``sqlite:///path.db`` (the default, in the output directory): one worker at a time. A second
  ``hptune run`` on the same file is refused (SQLite's writers lock the whole file).
* ``postgresql://user:pw@host/db``: many workers on many machines, through psycopg 3
  (``pip install 'hptune[postgres]'``), whatever SQLAlchemy 2 version is installed.
* ``journal:///path/run.log``: Optuna's ``JournalStorage`` on a file, for several workers on a
  shared file system with no database server.

Workers never rely on timing: every change to a phase's queue (queueing trials, retrying a
failed one, claiming the next, deciding) happens under a lock held in the storage itself (a
PostgreSQL advisory lock) or next to the file (SQLite, journal). Each
running trial writes a heartbeat into its system attributes, a new value each beat; a trial
whose heartbeat has not changed for the grace period, as timed on the checking worker's own
monotonic clock, is failed (its process died), then queued again. No two hosts' clocks are
ever compared.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hptune import keys
from hptune.config import TuneConfig, redact_url
from hptune.exceptions import ConfigError, NoStorageYet

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)

__all__ = [
    "HEARTBEAT_ATTR",
    "Heartbeat",
    "StaleWatch",
    "backend",
    "claim_waiting_trial",
    "driver_url",
    "fail_dead_trials",
    "open_storage",
    "queue_lock",
    "single_worker_guard",
    "worker_id",
]

#: The trial system attribute a running trial's heartbeat thread refreshes: ``[beat, unix
#: time]``, a new beat number each time (only whether it changed is judged, never the time).
HEARTBEAT_ATTR = keys.HEARTBEAT
JOURNAL_PREFIX = "journal://"
#: Seconds after which a journal queue lock whose holder died is taken over.
JOURNAL_LOCK_GRACE = 30

Backend = Literal["sqlite", "journal", "postgresql", "other"]


def backend(url: str) -> Backend:
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(JOURNAL_PREFIX):
        return "journal"
    if url.startswith(("postgresql", "postgres:")):
        return "postgresql"
    return "other"


def driver_url(url: str) -> str:
    """``url`` with the PostgreSQL driver named: psycopg 3 (what ``hptune[postgres]``
    installs) when the URL names none. SQLAlchemy 2.0 reads a bare ``postgresql://`` as
    psycopg2, 2.1 as psycopg 3; naming it works with both. A named driver is kept.

    Args:
        url: A storage URL.

    Returns:
        The URL to open.
    """
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def _file_of(url: str) -> Path | None:
    """The file an SQLite or journal storage lives in."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if url.startswith(JOURNAL_PREFIX):
        return Path(url.removeprefix(JOURNAL_PREFIX))
    return None


def open_storage(config: TuneConfig, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """The run's Optuna storage. With ``must_exist`` (reading commands), never create one.

    Args:
        config: The run's configuration (its ``storage`` URL).
        must_exist: Refuse to create a storage file that is not there.

    Returns:
        The storage every phase's study lives in.

    Raises:
        NoStorageYet: ``must_exist`` and no storage file yet (nothing has run).
        ConfigError: a missing database driver, or a database that cannot be reached; the
            message never shows the password.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = driver_url(config.storage_url)
    path = _file_of(url)
    if path is not None:
        if must_exist and not path.exists():
            raise NoStorageYet(
                f"no storage at {config.storage_display!r}; run 'hptune run' on this "
                "configuration first"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if backend(url) == "journal":
            from optuna.storages.journal import JournalFileBackend

            assert path is not None
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        if must_exist:
            return optuna.storages.RDBStorage(url, skip_table_creation=True)
        with _schema_lock(url):  # workers starting together would create the tables twice
            return optuna.storages.RDBStorage(url)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"storage {config.storage_display!r} needs the Python package {exc.name!r}; "
            "install it (for PostgreSQL: pip install 'hptune[postgres]')"
        ) from None
    except Exception as exc:  # connection refused, bad credentials, unknown database...
        shown = str(exc).replace(url, config.storage_display)
        detail = redact_url(shown.replace(config.storage_url, config.storage_display))
        detail = detail.splitlines()[0]
        raise ConfigError(
            f"cannot open storage {config.storage_display!r}: {detail}. Check that the "
            "database server runs and the URL (host, port, user, database) is right."
        ) from None


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Serialize Optuna's table creation among workers on one database server."""
    kind = backend(url)
    if kind == "sqlite":
        from filelock import FileLock

        with FileLock(f"{_file_of(url)}.schema.lock"):
            yield
        return
    if kind != "postgresql":
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection, _server_lock(connection, kind, "hptune.schema"):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def _server_lock(connection: Any, kind: Backend, name: str) -> Iterator[None]:
    """A lock held in the database server (released if this process dies)."""
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    params: dict[str, object] = {"key": key}
    acquire, release = "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
    connection.execute(text(acquire), params)
    try:
        yield
    finally:
        connection.execute(text(release), params)
        connection.commit()


@contextlib.contextmanager
def queue_lock(
    config: TuneConfig, storage: optuna.storages.BaseStorage, name: str
) -> Iterator[None]:
    """Hold the lock of study ``name``'s queue: one worker at a time changes it."""
    url = config.storage_url
    kind = backend(url)
    if kind == "journal":
        # Optuna's journal lock: a file created with O_EXCL, which holds on NFS (v3 and later)
        # where flock does nothing on a share mounted `nolock`. A holder that died is released
        # after its grace period; the queue is held for milliseconds.
        from optuna.storages.journal import JournalFileOpenLock

        path = _file_of(url)
        assert path is not None
        lock = JournalFileOpenLock(f"{path}.{name}.queue", grace_period=JOURNAL_LOCK_GRACE)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
        return
    if kind == "sqlite":  # one worker only (single_worker_guard): a local lock suffices
        from filelock import FileLock

        path = _file_of(url)
        assert path is not None
        with FileLock(f"{path}.{name}.lock"):
            yield
        return
    if kind != "postgresql":
        yield  # an unknown backend: one worker is safe, several may queue a trial twice
        return
    engine = storage.engine  # type: ignore[attr-defined]
    with engine.connect() as connection, _server_lock(connection, kind, name):
        yield


@contextlib.contextmanager
def single_worker_guard(config: TuneConfig) -> Iterator[None]:
    """Refuse a second worker on one SQLite file while this one runs."""
    url = config.storage_url
    if backend(url) != "sqlite":
        yield
        return
    from filelock import FileLock, Timeout

    path = _file_of(url)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{path}.worker.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"another hptune process is running on {config.storage_display!r}. SQLite is for "
            "one worker at a time; for several workers use a PostgreSQL storage "
            "('storage: postgresql://user@host/db') or a journal file on a shared file "
            "system ('storage: journal:///shared/run.log')"
        ) from None
    try:
        yield
    finally:
        lock.release()


def worker_id() -> str:
    """Who runs a trial (its ``worker`` user attribute): host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_waiting_trial(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    trials: list[optuna.trial.FrozenTrial] | None = None,
) -> int | None:
    """Move the oldest queued trial to RUNNING; its id, or None if none is left.

    Call it under `queue_lock`: the state change is a compare-and-set on PostgreSQL,
    and a journal, but SQLite has no row locks and could hand one trial to two callers.
    """
    import optuna

    if trials is None:  # else: the study's trials as just read under the lock
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    for trial in sorted(waiting, key=lambda t: t.number):
        try:
            # False when another worker took it first (compare-and-set in the storage).
            if storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.RUNNING):
                storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, [0, time.time()])
                storage.set_trial_user_attr(trial._trial_id, keys.WORKER, worker_id())
                return trial._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


class StaleWatch:
    """Which running trials' heartbeats have stopped, timed on this process's own clock.

    A trial is stale when its heartbeat value has not changed for ``grace_seconds`` of
    ``clock`` (``time.monotonic`` by default) since this watch first saw that value. What the
    heartbeat holds is never compared with this machine's time, so a worker whose clock runs
    minutes ahead or behind is judged like any other (Optuna's own heartbeat compares the
    writer's and the checker's clocks through the database). A watch starting late (a new
    ``hptune run`` after a crash) waits one grace period from its first look.

    Args:
        grace_seconds: How long a heartbeat may stay unchanged.
        clock: Seconds on a clock that only moves forward.
    """

    def __init__(self, grace_seconds: float, clock: Any = time.monotonic) -> None:
        self.grace_seconds = grace_seconds
        self.clock = clock
        self._seen: dict[int, tuple[str, float]] = {}  # trial id -> (heartbeat, first seen)

    def is_stale(self, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether ``trial``'s heartbeat has stood still for the grace period.

        Args:
            trial: A running trial, as just read from the storage.

        Returns:
            True once its heartbeat has not changed for ``grace_seconds`` of this watch.
        """
        beat = repr(trial.system_attrs.get(HEARTBEAT_ATTR))
        now = self.clock()
        seen = self._seen.get(trial._trial_id)
        if seen is None or seen[0] != beat:
            self._seen[trial._trial_id] = (beat, now)
            return False
        return now - seen[1] > self.grace_seconds


def fail_dead_trials(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    watch: StaleWatch,
    trials: list[optuna.trial.FrozenTrial] | None = None,
) -> list[int]:
    """Fail the running trials whose heartbeat ``watch`` finds stale; their numbers.

    Args:
        study: The phase's study.
        storage: Its storage.
        watch: The heartbeats seen so far, on this process's clock (keep one per phase).
        trials: The study's trials as just read; read now when None.

    Returns:
        The numbers of the trials failed (each marked ``hptune.stale``).
    """
    import optuna

    failed = []
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]:
        if not watch.is_stale(trial):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, keys.STALE, True)
            if storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL):
                failed.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished meanwhile, or failed by another worker
    return failed


class Heartbeat:
    """While a trial runs, refresh its heartbeat every ``interval`` seconds (a thread)."""

    def __init__(
        self, storage: optuna.storages.BaseStorage, trial_id: int, interval: float
    ) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self.failed_writes = 0  # beats the storage refused (logged, retried at the next beat)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="hptune-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        import optuna

        beat = 0
        while not self._stop.wait(self.interval):
            beat += 1  # a new value each time, whatever this machine's clock says
            try:
                value = [beat, time.time()]
                self.storage.set_trial_system_attr(self.trial_id, HEARTBEAT_ATTR, value)
            except optuna.exceptions.UpdateFinishedTrialError:
                return  # failed as stale by another worker: nothing left to keep alive
            except Exception as exc:  # a passing database error: the next beat tries again
                self.failed_writes += 1
                _log.warning(
                    "heartbeat of trial %s not written (%s: %s); %d beat(s) failed so far, the "
                    "next one tries again. Other workers fail a trial whose heartbeat stands "
                    "still for 2 x heartbeat_seconds",
                    self.trial_id, type(exc).__name__, exc, self.failed_writes,
                )  # fmt: skip
                continue
