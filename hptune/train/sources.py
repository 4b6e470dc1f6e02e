"""Where the records come from: local files, a ``DatasetDict``, a saved or hub-cached dataset.

`read_sources` returns each split's raw records with a location per record (``file:line``
or ``record N``), so every later check names the record it refuses. Files are parsed here,
record by record, before any loader sees them: a malformed line is named by file and line
rather than by a parser's error, and a value of the wrong type is never coerced.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hptune.config import SPLIT_ALIASES
from hptune.config._data import folder_as_file
from hptune.demo import resolve_demo_path
from hptune.exceptions import DataError

if TYPE_CHECKING:
    from hptune.config import DataConfig

__all__ = ["SUFFIXES", "Source", "read_sources"]

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass
class Source:
    """One split's records as read: a list of dicts (files) or a ``datasets.Dataset``."""

    records: Any
    #: Where each record is, for messages: ``path:line`` or ``record N``; same order.
    where: list[str]
    #: The file or dataset the split was read from.
    origin: str

    @property
    def columns(self) -> list[str]:
        if isinstance(self.records, list):
            return list(dict.fromkeys(k for r in self.records[:1000] for k in r))
        return list(self.records.column_names)

    def take(self, indices: list[int]) -> Source:
        records = (
            [self.records[i] for i in indices]
            if isinstance(self.records, list)
            else self.records.select(indices)
        )
        return Source(records, [self.where[i] for i in indices], self.origin)


def read_sources(config: DataConfig) -> dict[str, Source]:
    """Read the configured splits: ``train`` and ``validation``, and ``test`` when given.

    Without a validation split, ``data.validation_fraction`` of the training records (a
    seeded, deterministic choice) becomes it.

    Raises:
        DataError: A file cannot be read, is empty or malformed; a split is missing.
    """
    if config.dataset is not None:
        splits = _dataset_splits(config)
    else:
        splits = {
            split: _read_file(split, getattr(config, split))
            for split in ("train", "validation", "test")
            if getattr(config, split) is not None
        }
    for name, source in splits.items():
        if len(source.records) == 0:
            raise DataError(f"data.{name}: the {name} split has no examples")
    if "validation" not in splits:
        splits = _split_off_validation(splits, config)
    elif config.validation_fraction is not None:
        raise DataError(
            f"data.validation_fraction: {splits['validation'].origin} is already a validation "
            "split; remove data.validation_fraction, or name another split with "
            "data.split_names"
        )
    return splits


def _split_off_validation(splits: dict[str, Source], config: DataConfig) -> dict[str, Source]:
    fraction = config.validation_fraction
    if fraction is None:
        raise DataError(
            "data: there is no validation split; give data.validation (a file), name the "
            "dataset's split with data.split_names, or set data.validation_fraction (e.g. 0.1) "
            "to hold out part of the training data"
        )
    train = splits["train"]
    # A seeded shuffle of indices rather than Dataset.train_test_split: the records stay
    # hptune's (each with the file and line a message names), not rows of an Arrow table.
    order = list(range(len(train.records)))
    random.Random(config.split_seed).shuffle(order)
    n_validation = max(1, round(fraction * len(order)))
    if n_validation >= len(order):
        raise DataError(
            f"data.validation_fraction: {fraction} of {len(order)} training records leaves "
            "none to train on; lower it or add records"
        )
    return {
        **splits,
        "train": train.take(sorted(order[n_validation:])),
        "validation": train.take(sorted(order[:n_validation])),
    }


def _dataset_splits(config: DataConfig) -> dict[str, Source]:
    dataset = config.dataset
    origin = "the dataset"
    if isinstance(dataset, str):
        origin = f"dataset {dataset!r}"
        dataset = _load_named_dataset(dataset)
    names = dict(config.split_names or {})
    found = {}
    for split in ("train", "validation", "test"):
        candidates = (names[split],) if split in names else SPLIT_ALIASES[split]
        name = next((c for c in candidates if c in dataset), None)
        if name is None and split in names:
            raise DataError(
                f"data.split_names: {origin} has no split {names[split]!r} (splits: "
                f"{', '.join(dataset)}); name one of those"
            )
        if name is not None:
            records = dataset[name]
            where = [f"{origin}, {name} record {i + 1}" for i in range(len(records))]
            found[split] = Source(records, where, f"{origin} [{name}]")
    if "train" not in found:
        raise DataError(
            f"data.dataset: {origin} has no 'train' split (splits: {', '.join(dataset)}); name "
            "it with data.split_names: {train: NAME}"
        )
    return found


def _load_named_dataset(name: str) -> Any:
    """A folder written by ``save_to_disk``, or a hub dataset id read from the local cache."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(name).expanduser()
    if path.is_dir():
        try:
            saved = datasets.load_from_disk(str(path))
        except FileNotFoundError as exc:
            raise DataError(
                f"data.dataset: {name!r} is a folder but not one written by save_to_disk "
                f"({exc}); point data.train / data.validation at its files instead"
            ) from None
        if not isinstance(saved, datasets.DatasetDict):
            raise DataError(
                f"data.dataset: {name!r} holds one split, not a DatasetDict; save it as "
                "datasets.DatasetDict({'train': ...}) (with data.validation_fraction), or with "
                "its train and validation splits"
            )
        return saved
    try:
        loaded = datasets.load_dataset(name)
    except Exception as exc:  # datasets raises many types: offline, missing, malformed
        raise DataError(
            f"data.dataset: cannot load {name!r} ({type(exc).__name__}: {exc}). A hub dataset "
            "is read from the local Hugging Face cache; load it once with network access "
            "(datasets.load_dataset), or give local files as data.train / data.validation"
        ) from None
    if not isinstance(loaded, datasets.DatasetDict):
        raise DataError(f"data.dataset: {name!r} loaded as one split; it needs a train split")
    return loaded


def _read_file(split: str, value: str) -> Source:
    path = Path(resolve_demo_path(value)).expanduser()
    if path.is_dir():
        raise DataError(folder_as_file(split, path))
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"data.{split}: {str(path)!r} has an unknown extension; use one of "
            f"{', '.join(SUFFIXES)}"
        )
    if not path.is_file():
        raise DataError(f"data.{split}: file {str(path)!r} does not exist; fix the path")
    if path.stat().st_size == 0:
        raise DataError(f"data.{split}: {str(path)!r} is empty; it needs examples")
    if path.suffix.lower() == ".parquet":
        return _read_parquet(split, path)
    where = f"data.{split}: {path}"
    text = _utf8(path, where)
    if path.suffix.lower() == ".csv":
        lined = _csv_records(text, where)
    elif path.suffix.lower() == ".jsonl" or _is_json_lines(text):
        lined = _json_lines(text, where)
    else:
        lined = _json_array(text, where)
    if not lined:
        raise DataError(f"{where}: the file holds no records; the {split} split needs examples")
    return Source([r for _, r in lined], [f"{path}:{line}" for line, _ in lined], str(path))


def _read_parquet(split: str, path: Path) -> Source:
    import datasets

    datasets.disable_progress_bars()
    try:
        loaded = datasets.load_dataset("parquet", data_files={split: str(path)}, split=split)
    except Exception as exc:  # pyarrow and datasets raise many types for malformed files
        raise DataError(f"data.{split}: cannot read {str(path)!r}: {exc}") from None
    return Source(loaded, [f"{path}: record {i + 1}" for i in range(len(loaded))], str(path))


def _utf8(path: Path, where: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark (Excel's "CSV UTF-8") is dropped
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{where}:{line}: byte 0x{raw[exc.start]:02x} is not UTF-8 text; save the file as "
            "UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _is_json_lines(text: str) -> bool:
    """A ``.json`` file holding JSON Lines: not one JSON document, and starting with an object."""
    if text.lstrip()[:1] != "{":
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.msg == "Extra data"  # one object, then more: JSON Lines
    return False


def _parsed(text: str, where: str, expected: str, *, line_of_error: bool) -> Any:
    """``text`` as JSON; a DataError says where it is not (with the error's line, when
    ``where`` is a whole file's) and what was expected."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"{where}:{exc.lineno}" if line_of_error else where
        raise DataError(
            f"{at}: not valid JSON ({exc.msg} at column {exc.colno}); {expected}"
        ) from None


def _json_lines(text: str, where: str) -> list[tuple[int | str, dict[str, Any]]]:
    records: list[tuple[int | str, dict[str, Any]]] = []
    # split on newlines only: JSON strings may hold U+2028 and other characters that
    # str.splitlines() would also break at
    for line, content in enumerate(text.split("\n"), 1):
        if not content.strip():
            continue
        at = f"{where}:{line}"
        record = _parsed(content, at, "each line must be one JSON object", line_of_error=False)
        _check_object(record, f"{where}:{line}")
        records.append((line, record))
    return records


def _json_array(text: str, where: str) -> list[tuple[int | str, dict[str, Any]]]:
    expected = "the file must be one JSON array of objects, or JSON Lines"
    loaded = _parsed(text, where, expected, line_of_error=True)
    if isinstance(loaded, dict):  # {"data": [...]}, as some exports write it; else one record
        lists = [v for v in loaded.values() if isinstance(v, list)]
        # {"messages": [...]} is one chat record: its turns are no records of their own.
        wrapped = len(lists) == 1 and len(loaded) == 1 and "messages" not in loaded
        loaded = lists[0] if wrapped else [loaded]
    if not isinstance(loaded, list):
        raise DataError(f"{where}: expected a JSON array of objects, got a {type(loaded).__name__}")
    for number, record in enumerate(loaded, 1):
        _check_object(record, f"{where}: record {number}")
    return [(f" record {n}", r) for n, r in enumerate(loaded, 1)]


def _check_object(record: Any, where: str) -> None:
    if not isinstance(record, dict):
        raise DataError(
            f"{where}: a JSON {type(record).__name__}, not an object; each record must be one "
            'JSON object such as {"question": ..., "answer": ...}'
        )


def _csv_records(text: str, where: str) -> list[tuple[int | str, dict[str, Any]]]:
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text, newline=""))
    records: list[tuple[int | str, dict[str, Any]]] = []
    try:
        for record in reader:
            if None in record:  # more cells than the header has columns
                raise DataError(
                    f"{where}:{reader.line_num}: more cells than the header's "
                    f"{len(reader.fieldnames or [])} columns; quote cells that hold commas"
                )
            records.append((reader.line_num, dict(record)))
    except csv.Error as exc:
        raise DataError(f"{where}:{reader.line_num}: not valid CSV ({exc})") from None
    return records
