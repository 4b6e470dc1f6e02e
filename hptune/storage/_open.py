"""Opening a run's Optuna storage, with errors that name the fix and never the password."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hptune._lazy import optuna, sqlalchemy
from hptune.config import TuneConfig, redact_url
from hptune.exceptions import ConfigError, NoStorageYet
from hptune.storage._locks import _schema_lock
from hptune.storage._urls import _file_of, backend, driver_url

if TYPE_CHECKING:
    import optuna.storages.journal


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
            assert path is not None
            return _journal_storage(path)
        if must_exist:
            return _rdb_storage(url, skip_table_creation=True)
        with _schema_lock(url):  # workers starting together would create the tables twice
            return _rdb_storage(url, skip_table_creation=False)
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


#: Times a storage is opened again after a peer created its tables at the same moment.
_CREATION_RACE_RETRIES = 3


def _rdb_storage(url: str, *, skip_table_creation: bool) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage, opened again when a peer outside hptune's lock raced its creation.

    Any opener of a fresh database writes to it (Optuna stamps its schema version even with
    ``skip_table_creation``): optuna-dashboard or a reading script opening the file at the
    moment a worker creates it makes one of them fail on a unique constraint. The second
    attempt finds the tables and the stamp in place.
    """
    for attempt in range(_CREATION_RACE_RETRIES + 1):
        try:
            return optuna.storages.RDBStorage(url, skip_table_creation=skip_table_creation)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as exc:
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == _CREATION_RACE_RETRIES:
                raise
    raise AssertionError("unreachable")


def heartbeat_storage(
    config: TuneConfig, storage: optuna.storages.BaseStorage
) -> optuna.storages.BaseStorage:
    """The storage a running trial's heartbeat thread writes through.

    A journal storage of its own: Optuna's ``JournalStorage`` serves one thread at a time
    (every read and write holds its thread lock, a read of all trials while it deep-copies
    them), so a beat sharing the training thread's storage waits whenever that thread reads,
    and on a loaded machine that wait outlasts the grace. A database storage is shared (its
    connections are pooled per thread), as is SQLite (one worker; a second connection
    would only contend for the file's lock).

    Args:
        config: The run's configuration (its storage URL).
        storage: The storage the training thread uses.

    Returns:
        The storage for the heartbeat's writes.
    """
    journal = backend(config.storage_url) == "journal"
    if not journal or not isinstance(storage, optuna.storages.JournalStorage):
        return storage
    path = _file_of(driver_url(config.storage_url))
    assert path is not None
    return _journal_storage(path)


def _journal_storage(path: Path) -> optuna.storages.JournalStorage:
    """Optuna's journal storage on the file ``path``."""
    backend_file = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend_file)
