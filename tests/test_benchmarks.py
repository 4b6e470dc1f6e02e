"""Each benchmark's --quick variant runs and prints its table (a smoke test: the figures are
checked for shape and sense, never for speed)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_batch_finder_compares_the_four_searches() -> None:
    out = _run("batch_finder.py", "--quick")
    row = next(line for line in out.splitlines() if line.strip().startswith("40G"))
    cells = re.findall(r"(\d+)/(\d+)/(\d+) -> (\d+|None)", row)
    assert len(cells) == 4  # hptune x2, Lightning, Accelerate
    largest = int(row.split()[2])
    for _, _, _, found in cells:
        assert found != "None" and int(found) <= largest  # nobody claims a batch that OOMs


@pytest.mark.slow
def test_worker_throughput_quick(postgres_server) -> None:
    out = _run("worker_throughput.py", "--quick")
    for backend in ("postgresql", "journal", "sqlite"):
        row = next(line for line in out.splitlines() if line.startswith(backend))
        assert re.search(r"\d+\.\d \(1\.00x\)", row)


@pytest.mark.slow
def test_loop_throughput_quick(demo_path) -> None:
    out = _run("loop_throughput.py", "--quick")
    for loop in ("hptune", "hptune trainer", "hptune sft", "accelerate (bare)", "Trainer"):
        row = next(line for line in out.splitlines() if line.startswith(loop + " "))
        assert float(row[len(loop) :].split()[0]) > 0
        assert re.search(r"\d\.\d\dx +\d\.\d\dx$", row)  # ratios to bare and to hptune's loop


@pytest.mark.slow
def test_finqa_quick_prints_the_learning_rate_and_batch_tables(demo_path) -> None:
    out = _run("finqa/run.py", "--quick")
    assert "learning rate, 2 seeds" in out and "decision:" in out
    rates = re.findall(r"^  (0\.\d+|\de-\d+) ", out, re.M)
    assert len(rates) == 3  # the reference grid x100
    assert re.search(r"^  4 x 4 ", out, re.M) and re.search(r"^  16 x 1 ", out, re.M)


@pytest.mark.slow
def test_trial_overhead_quick(demo_path) -> None:
    out = _run("trial_overhead.py", "--quick")
    searches = ("hptune ", "hptune, trainer backend", "hptune, sft backend",
                "Trainer.hyperparameter_search")  # fmt: skip
    for search in searches:
        row = next(line for line in out.splitlines() if search in line and "demo" in line)
        first, later, between = row.split()[-3:]
        assert float(first) > 0 and float(later) >= 0 and float(between) >= 0


@pytest.mark.slow
def test_the_tabular_benchmark_builds_and_resumes(demo_path, tmp_path) -> None:
    import json

    table = tmp_path / "table.json"
    first = _run("search/build_table.py", "--quick", "--out", str(table))
    assert "0 runs cached, 12 to train" in first
    runs = json.loads(table.read_text())["runs"]
    assert len(runs) == 12
    assert all(len(r["epochs"]) == json.loads(k)["epochs"] for k, r in runs.items())
    again = _run("search/build_table.py", "--quick", "--out", str(table))
    assert "12 runs cached, 0 to train" in again  # nothing trained twice

    figures_file = tmp_path / "race.json"
    race = _run("search/race.py", "--quick", "--table", str(table), "--json", str(figures_file))
    assert "4 configurations x 3 seeds" in race
    rows = {r.split("|")[1].strip(): r.split("|")[2:-1] for r in race.splitlines()
            if r.startswith("| ") and not r.startswith("| searcher")}  # fmt: skip
    assert set(rows) == {"hptune (3 seeds)", "hptune (2 seeds)",
                         "HF hyperparameter_search (defaults)", "Optuna TPE + MedianPruner",
                         "random search", "Hyperband"}  # fmt: skip
    budget = int(rows["hptune (3 seeds)"][0])
    assert budget > 0 and all(int(cells[0]) <= budget for cells in rows.values())
    for cells in rows.values():
        assert float(cells[1]) >= 0  # regret: never below the oracle
        assert re.fullmatch(r"\d/3 \(\d+%\)", cells[3].strip())
    figures = json.loads(figures_file.read_text())  # the same figures, as numbers
    assert set(figures) == set(rows) | {"pruning"}
    pruning = figures["pruning"]  # with and without pruning, the same repeats
    assert pruning["repeats"] == 3 and 0 <= pruning["same_decision_share"] <= 1
    assert pruning["epochs_with"] <= pruning["epochs_without"]
    assert f"same final choice in {round(3 * pruning['same_decision_share'])}/3" in race
    for name, cells in rows.items():
        within = int(cells[3].strip().split("/")[0])
        assert figures[name]["within_noise_share"] == pytest.approx(within / 3)
        assert f"{figures[name]['median_regret']:.2f}" == cells[1].strip()
        assert figures[name]["repeats"] == 3
        assert f"{figures[name]['epochs_median']:.0f}" == cells[0].strip()


@pytest.mark.slow
def test_pruning_savings_quick(demo_path) -> None:
    out = _run("pruning_savings.py", "--quick")
    cells = [line.split() for line in out.splitlines() if line.split()]
    rows = {c[0]: c for c in cells if c[0] in ("epochs", "regularization", "both")}
    assert set(rows) == {"epochs", "regularization", "both"}
    for phase in ("epochs", "regularization"):
        without, with_pruning = int(rows[phase][1]), int(rows[phase][2])
        assert without > 0 and with_pruning > 0
        assert rows[phase][5] in ("True", "False")  # whether both runs decided the same
    assert int(rows["both"][1]) == int(rows["epochs"][1]) + int(rows["regularization"][1])


@pytest.mark.slow
def test_backend_parity_quick(demo_path) -> None:
    out = _run("backend_parity.py", "--quick")
    rows = re.findall(r"^ +\d +\d +([\d.]+) +([\d.]+) +([\d.]+)$", out, re.M)
    assert len(rows) == 2  # 2 seeds x 1 epoch, a loss per backend
    worst = float(re.search(r"between backends: (\S+)", out)[1])
    spread = float(re.search(r"between seeds: (\S+)", out)[1])
    assert worst < 1e-3 and worst < spread
