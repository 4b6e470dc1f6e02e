#!/usr/bin/env bash
# One prepared GPU check, a few minutes on one GPU, downloading nothing: hptune's memory
# model against measured peak memory for Llama-shaped 1B and 8B models (random weights), then
# hptune's loop against the Trainer, seeds together against in turn, and candidates and seeds
# together (nine adapters: three rates x three seeds) on those shapes, each
# section appended to the JSON file as it finishes (scripts/gpu_check.py says what).
#
#   bash scripts/gpu_check.sh [--dry] [--out FILE.json]
#
# Here: .venv's python. On a GPU machine with its own torch (HPTUNE_PYTHON=python3), carry
# what hptune needs beyond it as wheels and put them and this checkout on PYTHONPATH, e.g.
# for an image with torch, transformers < 5.24, peft, accelerate and pyyaml: transformers
# 5.25.0 (13.8 MB), pydantic 2.12.5 (0.46 MB), pydantic-core 2.41.5 (2.1 MB, cp312
# manylinux), annotated-types and typing-inspection (0.03 MB): 16.3 MB in all.
#   pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site:. HPTUNE_PYTHON=python3 bash scripts/gpu_check.sh --out $OUT/gpu.json
# bitsandbytes (QLoRA) is about 105 MB: over a 64 MB carry, its section is then skipped.
# The throughput sections read the demo's data through datasets (with pyarrow, ~45 MB more):
# on an image without it they record the import error, and the memory sections stand.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${HPTUNE_PYTHON:-.venv/bin/python}" scripts/gpu_check.py "$@"
