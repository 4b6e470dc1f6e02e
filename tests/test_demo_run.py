"""The README's main job: the demo's baseline and learning-rate phases, with the method's shape."""

from pathlib import Path

import pytest

import hptune
from hptune.seeds import paired_difference

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"


@pytest.mark.slow
def test_demo_learning_rate_table_has_the_lectures_shape(demo_path, tmp_path, capsys) -> None:
    config = hptune.load_config(DEMO).model_copy(update={"output_dir": str(tmp_path)})
    result = hptune.run(config)
    printed = capsys.readouterr().out
    assert "demo.baseline" in printed and "demo.learning_rate" in printed
    assert "decision (" in printed

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
