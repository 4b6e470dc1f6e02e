"""Reading a configuration from YAML or a dict, with pydantic's errors turned into ConfigError."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hptune.config._errors import describe_errors
from hptune.config._tune import TuneConfig
from hptune.exceptions import ConfigError


def load_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> TuneConfig:
    """Read and validate a YAML configuration file.

    Relative data and model paths are taken relative to the file's directory, so a
    configuration runs the same from any working directory.

    Args:
        path: The YAML file.
        check_paths: Also refuse missing data files and local model paths (building the
            demo's files when the configuration names them).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing or malformed, or a value is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path} is not valid YAML: {exc}. Fix the indentation or quoting at that line."
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of keys (model:, data:, ...), got {type(raw).__name__}"
        )
    config = config_from_dict(raw, base_dir=path.parent)
    if check_paths:
        config.check_paths()
    return config


def config_from_dict(raw: dict[str, Any], *, base_dir: Path | None = None) -> TuneConfig:
    """Validate a configuration given as a dict, turning pydantic's errors into a ConfigError.

    Args:
        raw: The configuration, as its YAML file would hold it.
        base_dir: Take relative data, model and output paths relative to this directory.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: A value is invalid: one line per problem, with the key and the fix.
    """
    raw = _relative_to(raw, base_dir) if base_dir is not None else raw
    try:
        config = TuneConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    if base_dir is not None:
        config.objective._search_dir = str(base_dir)
    return config


def _relative_to(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    raw = dict(raw)

    def fix(value: Any, *, only_if_exists: bool = False) -> Any:
        if not isinstance(value, str) or not value or value.startswith("demo://"):
            return value
        candidate = Path(value).expanduser()
        # A hub id ("org/model") is kept unless its first part is a folder beside the file.
        beside = (base_dir / candidate.parts[0]).exists() if candidate.parts else False
        if candidate.is_absolute() or (only_if_exists and not beside):
            return value
        return str(base_dir / candidate)

    if isinstance(raw.get("data"), dict):
        data = dict(raw["data"])
        for key in ("train", "validation", "test"):
            data[key] = fix(data.get(key)) if key in data else None
        if isinstance(data.get("chat_template"), str) and "{" not in data["chat_template"]:
            data["chat_template"] = fix(data["chat_template"])  # a file's path, not Jinja
        if "dataset" in data:  # a save_to_disk folder beside the file; else a hub id
            data["dataset"] = fix(data["dataset"], only_if_exists=True)
        raw["data"] = {k: v for k, v in data.items() if k in raw["data"]}
    if isinstance(raw.get("model"), dict) and "path" in raw["model"]:
        raw["model"] = {**raw["model"], "path": fix(raw["model"]["path"], only_if_exists=True)}
    if isinstance(raw.get("output_dir"), str) and not Path(raw["output_dir"]).is_absolute():
        raw["output_dir"] = str(base_dir / raw["output_dir"])
    return raw


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem of a ``TuneConfig``: the key, what is wrong, and how to fix it.

    Args:
        exc: pydantic's error for a ``TuneConfig``.

    Returns:
        The message of the ConfigError, starting ``invalid configuration:``.
    """
    return describe_errors(exc, TuneConfig)
