"""The built-in demo: a tiny local Llama and synthetic financial-QA data, made offline.

Configurations refer to the demo's files with ``demo://`` paths (``demo://model``,
``demo://data/train.jsonl``); the first use builds them (about half a minute on two CPU
cores) into a cache directory and every later use reuses them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hptune._lazy import filelock, transformers
from hptune.demo._data import write_formats, write_splits
from hptune.demo._model import build_model, build_tokenizer

__all__ = ["DEMO_SCHEME", "demo_dir", "ensure_demo", "resolve_demo_path"]

DEMO_SCHEME = "demo://"
# Bump when the generated files change, so that old caches are not reused.
_VERSION = "v3"  # v2: no example in two splits; v3: the chat and Alpaca copies
_SEED = 1234


def demo_dir() -> Path:
    """Where the demo is cached: ``$HPTUNE_CACHE/demo-<version>`` (default ``~/.cache/hptune``)."""
    root = os.environ.get("HPTUNE_CACHE") or Path.home() / ".cache" / "hptune"
    return Path(root) / f"demo-{_VERSION}"


def ensure_demo() -> Path:
    """Build the demo model and data once (safe across processes) and return their directory."""
    target = demo_dir()
    if (target / "COMPLETE").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(target) + ".lock"):
        if (target / "COMPLETE").exists():  # another process built it while we waited
            return target
        print(f"hptune: building the demo model and data into {target} (once)...", flush=True)
        staging = Path(tempfile.mkdtemp(prefix="demo-build-", dir=target.parent))
        try:
            _build(staging)
            (staging / "COMPLETE").write_text(_VERSION + "\n")
            if target.exists():  # a partial build from a killed process
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_demo_path(value: str) -> str:
    """Map ``demo://<relative path>`` to the cached file, building the demo if needed."""
    if not value.startswith(DEMO_SCHEME):
        return value
    return str(ensure_demo() / value[len(DEMO_SCHEME) :])


def _build(directory: Path) -> None:
    transformers.logging.disable_progress_bar()
    write_splits(directory / "data", seed=_SEED)
    write_formats(directory / "data")
    tokenizer = build_tokenizer(directory / "model", seed=_SEED)
    build_model(directory / "model", tokenizer, seed=_SEED)
