#!/usr/bin/env bash
# Set up .venv with hptune and its development tools.
# torch is installed only when the environment lacks it: a GPU user can install the torch
# build for their CUDA first (into .venv, or set HPTUNE_TORCH to a pip requirement) and keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "${HPTUNE_TORCH:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
