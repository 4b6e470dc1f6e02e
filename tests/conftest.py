import os
import tempfile
from pathlib import Path

import pytest
import torch  # before the thread variables below: this process keeps the default threads

# Tests build the demo into their own cache (proving the first-use build) and never go online.
os.environ.setdefault("HPTUNE_CACHE", tempfile.mkdtemp(prefix="hptune-test-cache-"))
os.environ["HF_HUB_OFFLINE"] = "1"
# The suite runs in a process per core (pytest-xdist, pyproject's addopts: whole files per
# process, the costliest first), each with one compute thread, and the processes tests start
# (a run beside the test that watches it, workers side by side) get one each: several
# processes with all cores' threads oversubscribe the cores, and spinning OpenMP threads then
# make every small operation wait for a time slice (measured: a run 4.7x slower beside one
# other). In one process (-n 0), the test process keeps PyTorch's default threads.
torch.get_num_threads()  # fixes this process's threads before the variables below
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["HF_DATASETS_OFFLINE"] = "1"

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="session")
def demo_path() -> Path:
    from hptune.demo import ensure_demo

    return ensure_demo()


@pytest.fixture
def tiny_config_dict(demo_path: Path, tmp_path: Path) -> dict:
    return tiny_config(tmp_path)


def tiny_config(tmp_path: Path) -> dict:
    """A configuration small enough to train end to end in seconds."""
    return {
        "name": "tiny",
        "model": {"path": "demo://model"},
        "method": {"type": "lora", "target_modules": "all-linear"},
        "data": {
            "train": "demo://data/train.jsonl",
            "validation": "demo://data/validation.jsonl",
            "template": "Question: {question}\nAnswer: ",
            "max_length": 96,
        },
        "objective": {"seeds": 2, "eval_samples": 8, "max_new_tokens": 8},
        "training": {
            "learning_rate": 5e-3,
            "batch_size": 16,
            "epochs": 1,
            "max_train_examples": 96,
            "max_validation_examples": 48,  # validation costs most at this size
        },
        # A two-point grid is all edges: no edge extension here (tests/pipeline/test_edges.py)
        "phases": {
            "run": ["baseline", "learning_rate"],
            "learning_rate": {"grid": [1e-4, 5e-3], "extend_edges": 0},
        },
        "output_dir": str(tmp_path / "out"),
    }


def five_phase_config(tmp_path: Path) -> dict:
    raw = tiny_config(tmp_path)
    raw["data"]["test"] = "demo://data/test.jsonl"
    raw["training"].update({"batch_size": 8, "gradient_accumulation_steps": 2})
    # as the demo trains: each trial's seeds and each phase's queued candidates in one stack
    raw["training"]["candidates_together"] = "auto"
    raw["phases"] = {
        "learning_rate": {"grid": [1e-3, 5e-3], "extend_edges": 0},
        # ~19 MB predicted for batch 8, ~36 MB for 16: a 30 MB "GPU" only fits 8 and below
        "batch_size": {"memory_limit_gb": 0.03, "n_trials": 2},
        "epochs": {"range": [1, 3], "extend_edges": 0},
        "regularization": {"n_trials": 3},
    }
    return raw


@pytest.fixture(scope="session")
def five(demo_path, tmp_path_factory):
    """A finished run of all five phases and the test evaluation, shared by the tests.

    Trained once per test session: under pytest-xdist the first worker to ask trains it,
    and the others wait for it and read the run back from its storage (every phase decided,
    nothing trains again). The progress events are kept as JSON, as any worker sees them."""
    import json

    from filelock import FileLock

    from hptune.config import config_from_dict
    from hptune.pipeline import tune

    root = tmp_path_factory.getbasetemp()
    shared = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    with FileLock(str(shared / "five.lock")):
        config = config_from_dict(five_phase_config(shared / "five"))
        recorded = shared / "five" / "events.json"
        if recorded.exists():  # another worker trained it
            return config, tune(config), json.loads(recorded.read_text())
        events: list[dict] = []
        result = tune(config, progress=events.append)
        events = json.loads(json.dumps(events, default=str))
        recorded.write_text(json.dumps(events))
    return config, result, events


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on loopback for the session; skipped (loudly) where none starts."""
    from tests.postgres import PostgresServer

    try:
        server = PostgresServer()
        server.__enter__()
    except Exception as exc:  # no binaries, or the server would not start here
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests; the server did not start: {exc}")
        pytest.skip(f"PostgreSQL server could not start here ({exc}); CI runs these tests")
    yield server
    server.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """A fresh database per test."""
    import re

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60]
    return postgres_server.create_database(name)


def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist (``--dist loadfile``: one worker runs a whole test file, so a
    module's shared fixture is built once), the costliest files are handed out first, so
    that no worker is left with a long one at the end (``--no-loadscope-reorder`` keeps this
    order)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: -_COST.get(item.nodeid.split("::")[0], 0.0))  # stable


#: Seconds each test file took in a full run (its tests' durations summed, rounded: the
#: run of 2026-12-06 at d38ed5e); a file not listed counts as quick.
_COST: dict[str, float] = {
    "tests/test_benchmarks.py": 360,
    "tests/test_pipeline_phases.py": 310,  # the five phases twice, kill -9, the demo's batch
    "tests/test_workers.py": 300,
    "tests/test_own_training.py": 200,
    "tests/test_demo_run.py": 150,  # the learning-rate shape test; the rest is -m demo
    "tests/test_examples_formats.py": 115,
    "tests/test_signals.py": 110,
    "tests/train/test_together.py": 90,
    "tests/test_budget.py": 80,
    "tests/test_docs.py": 75,
    "tests/report/test_report.py": 50,
    "tests/train/test_distributed.py": 50,
    "tests/train/test_memory_between_trials.py": 46,
    "tests/train/test_backends.py": 45,
    "tests/test_heartbeat.py": 30,
    "tests/test_guardrails.py": 30,
    "tests/pipeline/test_groups.py": 30,
    "tests/train/test_checkpoints.py": 27,
    "tests/train/test_backend_parity.py": 25,
    "tests/test_pipeline_metrics.py": 20,
    "tests/phases/test_lora_rank.py": 18,
    "tests/train/test_loop.py": 14,
    "tests/train/test_trl_data.py": 14,
}
