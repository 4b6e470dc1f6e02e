"""GGUF checkpoints as a model source: checked before transformers reads them, and described.

transformers loads a GGUF file (``from_pretrained(folder, gguf_file=name)``, with the ``gguf``
package) into its own architecture class, dequantized: the weights, the tokenizer and its chat
template all come from the one file. What transformers says when the package is missing, the
file is not GGUF, or its architecture has no mapping is a log line and a bare exception; here
each is one paragraph naming the fix, raised before anything loads (`check_gguf`).
"""

from __future__ import annotations

import collections
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hptune.exceptions import ModelError

__all__ = ["GgufSummary", "check_gguf", "gguf_summary"]

#: The get-the-model command the errors name (README, examples/smollm2_finqa.yaml).
GET_COMMAND = "bash scripts/get_smollm2.sh"


@dataclass(frozen=True)
class GgufSummary:
    """What a GGUF file holds, as the plan says it.

    Attributes:
        file: The file's path.
        architecture: Its ``general.architecture`` (e.g. ``llama``).
        name: Its ``general.name``, or the file's name.
        quantization: The most common type of its weight matrices (e.g. ``Q4_1``).
        n_tensors: Its tensors.
    """

    file: str
    architecture: str
    name: str
    quantization: str
    n_tensors: int

    def described(self, dtype: str) -> str:
        """One line: ``GGUF SmolLM2 135M Instruct (llama, Q4_1, dequantized to float32)``."""
        return (
            f"GGUF {self.name} ({self.architecture}, {self.quantization} weights dequantized "
            f"to {dtype}) from {self.file}"
        )


def check_gguf(folder: str | Path, name: str) -> GgufSummary:
    """Check that transformers can load a GGUF file, before it tries.

    Args:
        folder: ``model.path``: the folder the file is in.
        name: ``model.gguf_file``.

    Returns:
        What the file holds.

    Raises:
        ModelError: The ``gguf`` package is missing, the file does not exist or is not a
            readable GGUF file, or transformers cannot dequantize its architecture.
    """
    path = Path(folder).expanduser() / name
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(
            f"model.gguf_file: reading the GGUF checkpoint {name!r} needs the gguf package, "
            "which is not installed here; install it with 'pip install gguf' (scripts/"
            "bootstrap.sh installs it), or give a folder written by save_pretrained as "
            "model.path"
        )
    if not path.is_file():
        raise ModelError(
            f"model.gguf_file: {str(path)!r} does not exist; give the path of a .gguf file as "
            f"model.path (for SmolLM2-135M-Instruct, '{GET_COMMAND}' puts one in the cache)"
        )
    summary = gguf_summary(str(path), path.stat().st_mtime_ns)
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if summary.architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        known = ", ".join(sorted(GGUF_SUPPORTED_ARCHITECTURES))
        raise ModelError(
            f"model.gguf_file: {name!r} holds a {summary.architecture!r} model, which the "
            f"installed transformers cannot dequantize from GGUF (it can: {known}); convert it "
            "to a save_pretrained folder with the tool that made it, or use another model"
        )
    return summary


@functools.lru_cache(maxsize=8)
def gguf_summary(path: str, mtime_ns: int = 0) -> GgufSummary:
    """Read a GGUF file's header (its tensors stay on disk).

    Args:
        path: The file.
        mtime_ns: Its modification time (a changed file is read again).

    Returns:
        What it holds.

    Raises:
        ModelError: The file is not a readable GGUF file.
    """
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
        fields = {key: _field_value(field) for key, field in reader.fields.items()}
        weights = collections.Counter(
            tensor.tensor_type.name for tensor in reader.tensors if len(tensor.shape) > 1
        )
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise ModelError(
            f"model.gguf_file: {path!r} is not a readable GGUF file ({exc.__class__.__name__}: "
            f"{exc}); it may be truncated or of another format: download it again "
            f"('{GET_COMMAND}' for SmolLM2-135M-Instruct)"
        ) from None
    architecture = str(fields.get("general.architecture", "unknown"))
    return GgufSummary(
        file=path,
        architecture=architecture,
        name=str(fields.get("general.name") or Path(path).name),
        quantization=weights.most_common(1)[0][0] if weights else "none",
        n_tensors=len(reader.tensors),
    )


def _field_value(field: Any) -> Any:
    """A GGUF header field's value: a string, a number, or None for an array."""
    if len(field.types) != 1:
        return None  # arrays (the vocabulary) are not needed here
    part = field.parts[field.data[0]]
    if field.types[0].name == "STRING":
        return bytes(part).decode("utf-8", errors="replace")
    return part.tolist()[0] if len(part) == 1 else None
