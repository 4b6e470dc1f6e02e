"""The decision step's note on a metric that told nothing apart."""

from hptune.config import config_from_dict
from hptune.keys import TrialStatus
from hptune.phases import TrialOutcome
from hptune.pipeline._decide import _flat_metric
from tests.conftest import tiny_config


def _outcome(number: int, values: list[float]) -> TrialOutcome:
    return TrialOutcome(number, {"learning_rate": 10.0**-number},
                        dict(enumerate(values)), TrialStatus.OK)  # fmt: skip


def test_a_metric_equal_on_every_seed_of_every_candidate_is_named(tmp_path) -> None:
    raw = tiny_config(tmp_path)
    raw["objective"]["metric"] = "exact_match"
    config = config_from_dict(raw)
    flat = [_outcome(1, [0.0, 0.0]), _outcome(2, [0.0, 0.0])]
    (note,) = _flat_metric(flat, config)
    assert "scored 0 on exact_match, so the metric told nothing apart" in note
    assert _flat_metric([_outcome(1, [0.0, 0.0]), _outcome(2, [0.0, 12.5])], config) == []
    assert _flat_metric([_outcome(1, [0.0, 0.0])], config) == []  # one candidate: no choice
