"""Where a run's studies live: opening the storage, one queue lock per study, heartbeats.

One module per job, as Optuna splits its storages: ``_urls`` (which backend a URL names),
``_open`` (opening it), ``_locks`` (the locks workers take), ``_claims`` (claiming a queued
trial) and ``_heartbeat`` (beats and the watch that finds dead trials).

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

from hptune.storage._claims import claim_waiting_trial, worker_id
from hptune.storage._heartbeat import HEARTBEAT_ATTR, Heartbeat, StaleWatch, fail_dead_trials
from hptune.storage._locks import queue_lock, single_worker_guard
from hptune.storage._open import heartbeat_storage, open_storage
from hptune.storage._urls import backend, driver_url

__all__ = [
    "HEARTBEAT_ATTR",
    "Heartbeat",
    "StaleWatch",
    "backend",
    "claim_waiting_trial",
    "driver_url",
    "fail_dead_trials",
    "heartbeat_storage",
    "open_storage",
    "queue_lock",
    "single_worker_guard",
    "worker_id",
]
