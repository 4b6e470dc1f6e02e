"""The pipeline: phases run in order, each an Optuna study worked through by any number of
workers on one storage.

One module per job: ``_run`` orchestrates (phase after phase, each from the decisions
before it), ``_queue`` is the multi-worker queue protocol, ``_edges`` and ``_racing`` what
it queues once a phase's trials are done, ``_decide`` the decision step (with ``_remedies``
for diverged trials), ``_setup`` the record that keeps studies from mixing setups;
``hptune.results`` holds what a run returns. Data flows one way:

    config -> phase -> study -> trial -> seeds (objective) -> runner -> decision
"""

from hptune.phases import make_phase, memory_limit_bytes
from hptune.pipeline._queue import run_claimed, work_through_queue
from hptune.pipeline._run import incoming_diagnoses, run_phase, tune
from hptune.results import PhaseResult, TuneResult
from hptune.start import resolve_hparams

__all__ = [
    "PhaseResult",
    "TuneResult",
    "incoming_diagnoses",
    "make_phase",
    "memory_limit_bytes",
    "resolve_hparams",
    "run_claimed",
    "run_phase",
    "tune",
    "work_through_queue",
]
