"""The locks workers take: table creation, one study's queue, one worker on an SQLite file.

Each lock lives where every worker of the storage sees it: a PostgreSQL advisory lock in the
server, Optuna's create-exclusive lock file next to a journal, a file lock next to SQLite.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from hptune._lazy import optuna, sqlalchemy
from hptune.config import TuneConfig
from hptune.exceptions import ConfigError
from hptune.storage._urls import Backend, _file_of, backend

if TYPE_CHECKING:
    import optuna.storages.journal

#: Seconds after which a journal queue lock whose holder died is taken over.
JOURNAL_LOCK_GRACE = 30


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Serialize Optuna's table creation among workers on one database server."""
    kind = backend(url)
    if kind == "sqlite":
        with FileLock(f"{_file_of(url)}.schema.lock"):
            yield
        return
    if kind != "postgresql":
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection, _server_lock(connection, kind, "hptune.schema"):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def _server_lock(connection: Any, kind: Backend, name: str) -> Iterator[None]:
    """A lock held in the database server (released if this process dies)."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    params: dict[str, object] = {"key": key}
    acquire, release = "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
    connection.execute(sqlalchemy.text(acquire), params)
    try:
        yield
    finally:
        connection.execute(sqlalchemy.text(release), params)
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
        path = _file_of(url)
        assert path is not None
        lock = optuna.storages.journal.JournalFileOpenLock(
            f"{path}.{name}.queue", grace_period=JOURNAL_LOCK_GRACE
        )
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
        return
    if kind == "sqlite":  # one worker only (single_worker_guard): a local lock suffices
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
