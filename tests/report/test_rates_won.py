"""The regularization section's table of the rate (and count) each candidate won at."""

from __future__ import annotations

from types import SimpleNamespace

from hptune.report._document import Table, _rates_won

WON = [
    {"candidate": "weight decay 0.01, constant_with_warmup, warmup 0", "learning_rate": 0.005,
     "factor": 0.5, "epochs": 4, "mean": 1.61},
    {"candidate": "weight decay 0.01, linear, warmup 0.05", "learning_rate": 0.01,
     "factor": 1.0, "epochs": 3, "mean": 1.7},
]  # fmt: skip


def _table(won: list[dict], params: dict | None = None) -> Table:
    decision = SimpleNamespace(summary={"rates_won": won}, params=params or {})
    evidence = SimpleNamespace(decision=decision)
    blocks = _rates_won(evidence)  # type: ignore[arg-type]
    (table,) = [b for b in blocks if isinstance(b, Table)]
    return table


def test_the_count_is_a_column_when_spare_trials_tried_other_counts() -> None:
    table = _table(WON)
    assert "epochs" in table.columns
    assert [row[table.columns.index("epochs")] for row in table.rows] == ["4", "3"]


def test_one_count_for_all_keeps_the_table_to_the_rates() -> None:
    table = _table([{**row, "epochs": 3} for row in WON])
    assert "epochs" not in table.columns and len(table.rows[0]) == 4
    assert table.rows[0][1] == "0.005"


def test_a_count_the_decision_changed_is_shown_even_when_all_won_at_it() -> None:
    table = _table([{**row, "epochs": 4} for row in WON], params={"epochs": 4})
    assert [row[table.columns.index("epochs")] for row in table.rows] == ["4", "4"]
