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
    """Return a ``datasets.DatasetDict`` from the configured files or in-memory dataset."""
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
        try:
            loaded = datasets.load_dataset(builder, data_files={split: str(path)}, split=split)
        except Exception as exc:  # datasets raises many types for malformed files
            raise DataError(f"data.{split}: cannot read {str(path)!r}: {exc}") from None
        splits[split] = loaded
    return datasets.DatasetDict(splits)


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
        response = tokenizer(record[config.response_field], add_special_tokens=False)["input_ids"]
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
    return PreparedData(
        train=tokenized(train),
        validation=tokenized(validation),
        validation_prompts=val_prompts,
        validation_references=val_refs,
        test=tokenized(test) if test is not None else None,
        test_prompts=test_prompts,
        test_references=test_refs,
        fingerprints={name: fingerprint(split, fields) for name, split in splits.items()},
        overlaps=split_overlaps(dict(splits), fields),
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
