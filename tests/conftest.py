import os
import tempfile
from pathlib import Path

# Tests build the demo into their own cache (proving the first-use build) and never go online.
os.environ.setdefault("HPTUNE_CACHE", tempfile.mkdtemp(prefix="hptune-test-cache-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest

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
        "objective": {"seeds": 2, "bleu_samples": 8, "max_new_tokens": 8},
        "training": {
            "learning_rate": 5e-3,
            "batch_size": 16,
            "epochs": 1,
            "max_train_examples": 96,
        },
        "phases": {"run": ["baseline", "learning_rate"], "learning_rate": {"grid": [1e-4, 5e-3]}},
        "output_dir": str(tmp_path / "out"),
    }
