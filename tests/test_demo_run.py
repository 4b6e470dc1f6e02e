"""The README's main job: the demo's five phases, with the method's shape where it is known."""

from pathlib import Path

import pytest

import hptune
from hptune.seeds import paired_difference

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"


@pytest.mark.slow
def test_demo_runs_five_phases_with_the_lectures_shape(demo_path, tmp_path, capsys) -> None:
    config = hptune.load_config(DEMO).model_copy(update={"output_dir": str(tmp_path)})
    result = hptune.run(config)
    printed = capsys.readouterr().out
    phases = ["baseline", "learning_rate", "batch_size", "epochs", "regularization", "final"]
    for phase in phases:
        assert f"demo.{phase}" in printed
    assert printed.count("decision (") == len(phases)
    assert "test (reported only, never used to decide)" in printed

    batch = result.phases[2]
    tried = {o.params["batch_size"] for o in batch.outcomes}
    assert tried == {4, 8, 16}  # 32 is predicted not to fit the 50 MB stand-in GPU
    chosen = batch.decision.params
    assert chosen["batch_size"] * chosen["gradient_accumulation_steps"] == 32

    lr_phase = result.phases[1]
    grid = config.phases.learning_rate.grid
    by_lr = {o.params["learning_rate"]: o for o in lr_phase.outcomes}
    chosen = lr_phase.decision.params["learning_rate"]
    assert grid[0] < chosen < grid[-1]  # at neither end of the grid

    lowest, highest = by_lr[grid[0]], by_lr[grid[-1]]
    # The lowest rate clearly under-trains: worse than the chosen one beyond seed noise.
    assert paired_difference(lowest.seed_values, by_lr[chosen].seed_values).excludes_zero
    assert lowest.mean > by_lr[chosen].mean
    # The highest is worse than the chosen one, or diverged.
    assert highest.status == "diverged" or highest.mean > by_lr[chosen].mean
