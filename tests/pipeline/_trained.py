"""What hptune's objective writes on a trial that trained, for the fake objectives of the
queue's tests: the configuration and each seed's epochs (what the budget's ledger counts),
the seed values and the status."""

from __future__ import annotations

import statistics

import optuna

from hptune import keys
from hptune.hparams import HParams
from hptune.keys import TrialStatus


def record_trained(trial: optuna.Trial, hp: HParams, values: dict[str, float]) -> float:
    """Record ``values`` (seed -> value) as trained by ``hp``, one run per seed; the mean."""
    trial.set_user_attr(keys.HPARAMS, hp.to_dict())
    trial.set_user_attr(keys.RUNS, [
        {"seed": int(s), "epochs": [{"epoch": e + 1, "train_loss": 1.0, "eval_loss": 1.0}
                                    for e in range(hp.epochs)]}
        for s in values])  # fmt: skip
    trial.set_user_attr(keys.SEED_VALUES, values)
    keys.set_status(trial, TrialStatus.OK)
    return statistics.fmean(values.values())
