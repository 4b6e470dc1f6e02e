"""Loading, checking and tokenizing the data splits, once per process."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hptune.config import DataConfig
from hptune.demo import resolve_demo_path
from hptune.exceptions import DataError

__all__ = ["PreparedData", "fingerprint", "load_splits", "prepare_data", "split_overlaps"]

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class PreparedData:
    """Tokenized splits plus what evaluation needs: prompts and references for BLEU."""

    train: Any  # datasets.Dataset with input_ids / attention_mask / labels
    validation: Any
    validation_prompts: list[list[int]]
    validation_references: list[str]
    test: Any | None
    test_prompts: list[list[int]]
    test_references: list[str]
    fingerprints: dict[str, str]
    #: Distinct examples shared by each pair of splits (``"validation/test"`` -> count).
    overlaps: dict[str, int] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def max_train_length(self) -> int:
        """The longest tokenized training example: the padded length of the worst batch."""
        return max(len(ids) for ids in self.train["input_ids"])


def load_splits(config: DataConfig) -> Any:
    """Return a ``datasets.DatasetDict`` from the configured files or in-memory dataset.

    JSON Lines and CSV files are checked record by record first (UTF-8, syntax, the fields the
    template needs), so a bad record is named by file and line rather than by a parser error.
    Each loaded split keeps those line numbers in ``.info.description`` as JSON
    (see :func:`record_lines`).
    """
    import datasets

    if config.dataset is not None:
        return config.dataset
    splits = {}
    datasets.disable_progress_bars()
    for split in ("train", "validation", "test"):
        value = getattr(config, split)
        if value is None:
            continue
        path = Path(resolve_demo_path(value)).expanduser()
        builder = _BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(
                f"data.{split}: {str(path)!r} has an unknown extension; use one of "
                f"{', '.join(_BUILDERS)}"
            )
        if path.stat().st_size == 0:
            raise DataError(f"data.{split}: {str(path)!r} is empty; it needs examples")
        lines = check_records(split, path, _needed_fields(config))
        try:
            loaded = datasets.load_dataset(builder, data_files={split: str(path)}, split=split)
        except Exception as exc:  # datasets raises many types for malformed files
            raise DataError(f"data.{split}: cannot read {str(path)!r}: {exc}") from None
        loaded.info.description = json.dumps({"file": str(path), "lines": lines})
        splits[split] = loaded
    return datasets.DatasetDict(splits)


def check_records(split: str, path: Path, fields: list[str]) -> list[int] | None:
    """Check a JSON Lines or CSV file record by record; return each record's line number.

    Raises :class:`DataError` naming the file and line of the first record that is not UTF-8,
    not parseable, not an object, or lacks (or has an empty) field in ``fields``. Other
    formats are left to their loader (``None``).
    """
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv") and not _is_json_lines(path):
        return None
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"data.{split}: {path}:{line}: byte 0x{raw[exc.start]:02x} is not UTF-8 text; "
            "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    where = f"data.{split}: {path}"
    records = _csv_records(text, where) if suffix == ".csv" else _json_records(text, where)
    lines = []
    for line, record in records:
        for name in fields:
            value = record.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                state = "no field" if name not in record else "an empty field"
                raise DataError(
                    f"{where}:{line}: the record has {state} {name!r} (fields present: "
                    f"{', '.join(record) or 'none'}); fix the record or remove it, or set "
                    "data.prompt_field / data.response_field / data.template to your names"
                )
        lines.append(line)
    if not lines:
        raise DataError(f"{where}: the file holds no records; the {split} split needs examples")
    return lines


def _is_json_lines(path: Path) -> bool:
    """A ``.json`` file that is JSON Lines rather than one JSON document."""
    if path.suffix.lower() != ".json":
        return False
    with path.open("rb") as file:
        return file.read(64).lstrip()[:1] == b"{"


def _json_records(text: str, where: str) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for line, content in enumerate(text.splitlines(), 1):
        if not content.strip():
            continue
        try:
            record = json.loads(content)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{where}:{line}: not valid JSON ({exc.msg} at column {exc.colno}); each line "
                "must be one JSON object"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{where}:{line}: a JSON {type(record).__name__}, not an object; each line must "
                'be one JSON object such as {"question": ..., "answer": ...}'
            )
        records.append((line, record))
    return records


def _csv_records(text: str, where: str) -> list[tuple[int, dict[str, Any]]]:
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text, newline=""))
    records = []
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


def record_lines(split: Any) -> tuple[str, list[int]] | None:
    """The file and the line numbers :func:`load_splits` recorded for a split, if any."""
    try:
        found = json.loads(split.info.description or "")
    except (ValueError, AttributeError):
        return None
    if not isinstance(found, dict) or not isinstance(found.get("lines"), list):
        return None
    return str(found["file"]), [int(n) for n in found["lines"]]


def _example_digests(records: Any, fields: tuple[str, ...]) -> list[str]:
    return [
        hashlib.sha256(json.dumps([r[f] for f in fields]).encode()).hexdigest() for r in records
    ]


def fingerprint(records: Any, fields: tuple[str, ...]) -> str:
    """A content hash of a split's examples (order-independent), to compare splits."""
    digests = sorted(_example_digests(records, fields))
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:16]


def split_overlaps(splits: dict[str, Any], fields: tuple[str, ...]) -> dict[str, int]:
    """How many distinct examples each pair of splits shares, e.g. ``{"validation/test": 3}``."""
    digests = {name: set(_example_digests(split, fields)) for name, split in splits.items()}
    pairs = [("train", "validation"), ("train", "test"), ("validation", "test")]
    return {
        f"{a}/{b}": len(digests[a] & digests[b]) for a, b in pairs if a in digests and b in digests
    }


def prepare_data(
    config: DataConfig, tokenizer: Any, *, max_train_examples: int | None = None
) -> PreparedData:
    """Load, check and tokenize every split; labels cover the response tokens only."""
    splits = load_splits(config)
    fields = (config.prompt_field, config.response_field)
    for name, split in splits.items():
        if len(split) == 0:
            raise DataError(f"data.{name}: the {name} split has no examples")
        missing = [f for f in _needed_fields(config) if f not in split.column_names]
        if missing:
            raise DataError(
                f"data.{name}: the records have no field {', '.join(map(repr, missing))} "
                f"(fields present: {', '.join(split.column_names)}); set data.prompt_field / "
                "data.response_field / data.template to the names your data uses"
            )
    train = splits["train"]
    if max_train_examples is not None and max_train_examples < len(train):
        train = train.select(range(max_train_examples))

    def tokenize(record: dict[str, Any]) -> dict[str, list[int]]:
        prompt = _prompt_ids(config, tokenizer, record)
        answer = str(record[config.response_field])  # a CSV loader may read "42" as a number
        response = tokenizer(answer, add_special_tokens=False)["input_ids"]
        response = [*response, tokenizer.eos_token_id]
        input_ids = (prompt + response)[: config.max_length]
        labels = ([-100] * len(prompt) + response)[: config.max_length]
        return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}

    def tokenized(split: Any) -> Any:
        return split.map(tokenize, remove_columns=split.column_names)

    def prompts_and_references(split: Any) -> tuple[list[list[int]], list[str]]:
        return (
            [_prompt_ids(config, tokenizer, r) for r in split],
            [str(r[config.response_field]) for r in split],
        )

    validation = splits["validation"]
    test = splits.get("test")
    val_prompts, val_refs = prompts_and_references(validation)
    test_prompts, test_refs = prompts_and_references(test) if test is not None else ([], [])
    tokenized_splits = {"train": tokenized(train), "validation": tokenized(validation)}
    if test is not None:
        tokenized_splits["test"] = tokenized(test)
    for name, split in tokenized_splits.items():
        _check_answers_fit(name, split, train if name == "train" else splits[name], config)
    return PreparedData(
        train=tokenized_splits["train"],
        validation=tokenized_splits["validation"],
        validation_prompts=val_prompts,
        validation_references=val_refs,
        test=tokenized_splits.get("test"),
        test_prompts=test_prompts,
        test_references=test_refs,
        fingerprints={name: fingerprint(split, fields) for name, split in splits.items()},
        overlaps=split_overlaps(dict(splits), fields),
    )


def _check_answers_fit(name: str, tokenized: Any, source: Any, config: DataConfig) -> None:
    """Refuse a record whose prompt leaves no room for its answer within ``max_length``.

    Such a record trains nothing (every label is masked) and validates on no token; a batch
    of them makes the loss NaN. Answers cut short are only truncated, as configured.
    """
    for index, labels in enumerate(tokenized["labels"]):
        if any(label != -100 for label in labels):
            continue
        where = f"data.{name}: record {index + 1}"
        found = record_lines(source)
        if found is not None and index < len(found[1]):
            where = f"data.{name}: {found[0]}:{found[1][index]}"
        raise DataError(
            f"{where}: the prompt fills all data.max_length = {config.max_length} tokens, so "
            "no answer token would be trained or scored; raise data.max_length or shorten "
            "(or remove) the record"
        )


def _needed_fields(config: DataConfig) -> list[str]:
    import string

    fields = {config.response_field}
    if config.template is None:
        fields.add(config.prompt_field)
    else:
        fields |= {name for _, name, _, _ in string.Formatter().parse(config.template) if name}
    return sorted(fields)


def _prompt_ids(config: DataConfig, tokenizer: Any, record: dict[str, Any]) -> list[int]:
    if config.template is not None:
        text = config.template.format_map(record)
    else:
        text = f"{record[config.prompt_field]}\n"
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.bos_token_id, *ids] if tokenizer.bos_token_id is not None else ids
