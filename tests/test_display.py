"""Progress lines: the phase's and the whole run's time left, at the pace so far."""

import io

from rich.console import Console

import hptune._display as display
from hptune.hparams import HParams


def _epoch(phase: str) -> dict:
    return {"event": "epoch", "phase": phase, "trial": 0, "seed_index": 0, "epoch": 1,
            "hparams": HParams(1e-3, 4, 8, 2, 0.05, 0.01), "train_loss": 1.0, "eval_loss": 1.0,
            "score": None}  # fmt: skip


def test_eta_counts_the_phase_and_the_phases_still_to_run(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(display.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    printer = display.ProgressPrinter(Console(file=out, width=300), n_seeds=2, metric="eval_loss")
    printer({"event": "run_start", "seed_epochs": {"baseline": 4, "learning_rate": 20,
                                                    "epochs": 30}})  # fmt: skip
    printer({"event": "phase_done", "phase": "baseline", "result": None})  # decided earlier
    printer({"event": "phase_start", "phase": "learning_rate", "n_trials": 5, "seed_epochs": 10})
    for _ in range(4):  # 4 of the 10 remaining seed-epochs, 3 s each
        clock[0] += 3.0
        printer(_epoch("learning_rate"))
    last = out.getvalue().strip().splitlines()[-1]
    # phase: 6 left x 3 s = 18 s; run: 18 s + the epochs phase's 30 x 3 s = 1m48s
    # nothing finished yet to tell how much of the bound is used: the estimate is the bound
    assert "(phase eta ~18s (<= 18s), run eta ~1m48s (<= 1m48s))" in last


def test_the_estimate_scales_by_the_share_of_the_plan_finished_phases_trained(
    monkeypatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(display.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    printer = display.ProgressPrinter(Console(file=out, width=300), n_seeds=2, metric="eval_loss")
    bound = {"learning_rate": 20, "epochs": 30, "regularization": 40}
    without_racing = {"learning_rate": 16, "epochs": 24, "regularization": 24}
    printer({"event": "run_start", "seed_epochs": bound, "without_racing": without_racing})
    printer({"event": "phase_start", "phase": "learning_rate", "n_trials": 5, "seed_epochs": 20})
    for _ in range(5):  # pruning and read-back trials: 5 of the 20 planned were trained
        clock[0] += 3.0
        printer(_epoch("learning_rate"))
    printer({"event": "phase_done", "phase": "learning_rate", "result": None})
    printer({"event": "phase_start", "phase": "epochs", "n_trials": 3, "seed_epochs": 30})
    for _ in range(2):
        clock[0] += 3.0
        printer(_epoch("epochs"))
    last = out.getvalue().strip().splitlines()[-1]
    # phase: 28 left x 3 s = 1m24s at most, ~21s at the 5/20 share; run: at most 1m24s + 40
    # x 3 s = 3m24s; the estimate leaves racing out, (1m24s + 24 x 3 s) x 5/20 = 39s
    assert "(phase eta ~21s (<= 1m24s), run eta ~39s (<= 3m24s))" in last


def test_durations_read_at_a_glance() -> None:
    assert [display._duration(s) for s in (45, 725, 11220)] == ["45s", "12m05s", "3h07m"]


def test_waiting_is_said_once_per_wait_not_per_poll() -> None:
    out = io.StringIO()
    printer = display.ProgressPrinter(Console(file=out, width=300), n_seeds=1, metric="eval_loss")
    for _ in range(5):
        printer({"event": "waiting", "phase": "epochs"})
    printer(_epoch("epochs"))
    printer({"event": "waiting", "phase": "epochs"})
    assert out.getvalue().count("waiting for trials running elsewhere") == 2


def test_a_racing_trial_says_which_extra_seed_it_trains() -> None:
    out = io.StringIO()
    printer = display.ProgressPrinter(Console(file=out, width=300), n_seeds=3, metric="eval_loss")
    printer({"event": "phase_start", "phase": "learning_rate", "n_trials": 4, "seed_epochs": 24})
    printer({"event": "trial_start", "phase": "learning_rate", "trial": 5, "n_trials": 4,
             "hparams": HParams(1e-3, 4, 8, 2, 0.05, 0.01)})  # fmt: skip
    printer({**_epoch("learning_rate"), "trial": 5, "seed": 3, "racing": True})
    line = out.getvalue().splitlines()[-1]
    assert "(racing)" in line and "extra seed 3 epoch 1" in line
    assert "/4" not in line  # not counted as one of the phase's 4 trials


def test_a_finished_phase_says_what_it_trained_and_racings_part() -> None:
    out = io.StringIO()
    printer = display.ProgressPrinter(Console(file=out, width=300), n_seeds=3, metric="eval_loss")
    spent = {"seed_epochs": 42.0, "racing": 6.0}
    printer({"event": "phase_done", "phase": "epochs", "result": None, "spent": spent})
    assert out.getvalue().strip() == "phase epochs trained 42 seed-epochs, racing 6 of them"
    spent = {"seed_epochs": 30.0, "racing": 0.0, "spare": 9.0, "rate_probes": 0.0}
    printer({"event": "phase_done", "phase": "regularization", "result": None, "spent": spent})
    assert out.getvalue().splitlines()[-1] == (
        "phase regularization trained 30 seed-epochs, spare trials 9 of them"
    )
