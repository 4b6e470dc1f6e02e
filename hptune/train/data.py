"""The data, ready to train: records read, checked against their format, and tokenized.

The flow is `hptune.train.sources` (records and where each one is) ->
`hptune.train.formats` (the format detected or configured; each record's shape checked,
rendered into trained and untrained pieces) -> token ids and labels, here, once per process.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hptune._lazy import datasets
from hptune.exceptions import DataError
from hptune.train.formats import (
    DataFormat,
    Tokenized,
    detect_format,
    make_format,
    tokenize,
)
from hptune.train.sources import Source, read_sources
from hptune.train.trl_data import training_template, trl_record, trl_tokenize

if TYPE_CHECKING:
    from hptune.config import DataConfig

__all__ = ["PreparedData", "fingerprint", "prepare_data", "split_overlaps"]

#: How the format's line ends under ``data.tokenization: trl``.
_TRL_RULES = "; tokenized by TRL's rules (SFTTrainer formats, masks and packs the raw records)"

#: The seed of the validation subset text metrics generate answers for (the same every trial).
EVAL_SUBSET_SEED = 0


@dataclass
class PreparedData:
    """Tokenized splits plus what text metrics need: prompts and references."""

    train: Any  # datasets.Dataset with input_ids / attention_mask / labels
    validation: Any
    #: The validation subset text metrics score (``objective.eval_samples``, seeded).
    validation_prompts: list[list[int]]
    validation_references: list[str]
    test: Any | None
    #: The whole test split, for text metrics at the final evaluation.
    test_prompts: list[list[int]]
    test_references: list[str]
    fingerprints: dict[str, str]
    #: Distinct examples shared by each pair of splits (``"validation/test"`` -> count).
    overlaps: dict[str, int] = field(default_factory=dict)
    #: The data format (``chat``, ``alpaca``, ``prompt_completion``, ``template``) and its line.
    format: str = "template"
    format_description: str = ""
    #: Examples longer than ``data.max_length`` dropped per split (``data.drop_long``).
    dropped: dict[str, int] = field(default_factory=dict)
    #: Token lengths of the training examples, sorted (for ``hptune plan``'s percentiles).
    train_lengths: list[int] = field(default_factory=list)
    #: The first training example, tokenized (``hptune plan`` shows it with its labels).
    example: Tokenized | None = None
    #: Validation examples in all, and how many text metrics score.
    n_validation: int = 0
    #: ``data.tokenization: trl``: the training records in TRL's shape, for SFTTrainer to
    #: format, mask and pack itself (``hptune.train.trl_data``); else None.
    train_records: list[dict[str, Any]] | None = None
    #: The chat template TRL trains conversations with (``trl`` tokenization, chat data).
    trl_chat_template: str | None = None
    #: The longest example's tokens, over every split kept.
    longest: int = 0

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def max_train_length(self) -> int:
        """The longest tokenized training example: the padded length of the worst batch."""
        return max(len(ids) for ids in self.train["input_ids"])


def _example_digests(records: Any, fields: tuple[str, ...]) -> list[str]:
    return [
        hashlib.sha256(json.dumps([r.get(f) for f in fields], sort_keys=True).encode()).hexdigest()
        for r in records
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


def resolve_format(config: DataConfig, columns: list[str]) -> DataFormat:
    """The data format of records with these fields, with the configured chat template.

    Raises:
        DataError: The chat template file cannot be read.
    """
    name = detect_format(columns, config)
    return make_format(name, config, chat_template=_chat_template(config))


def chat_template_text(config: DataConfig) -> str | None:
    """The configured chat template's text (read from its file when a path is given).

    Raises:
        DataError: The file cannot be read.
    """
    return _chat_template(config)


def _chat_template(config: DataConfig) -> str | None:
    value = config.chat_template
    if value is None or "{" in value:
        return value
    path = Path(value).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(
            f"data.chat_template: {value!r} is neither a Jinja template (it has no braces) nor "
            f"a readable file ({exc.strerror}); give the template text or its file's path"
        ) from None


def _check_records(name: str, source: Source, fmt: DataFormat, config: DataConfig) -> None:
    for index, record in enumerate(source.records):
        problem = fmt.problem(record)
        if problem is not None:
            hint = ""
            if problem.startswith("the record has no field"):
                present = [k for k, v in record.items() if v is not None]
                hint = (
                    f" (fields present: {', '.join(present) or 'none'}; read as "
                    f"{fmt.describe()}; set data.format, data.template or data.prompt_field / "
                    "data.response_field to your layout)"
                )
            raise DataError(
                f"data.{name}: {source.where[index]}: {problem}{hint}; fix the record or remove it"
            )


def prepare_data(
    config: DataConfig,
    tokenizer: Any,
    *,
    max_train_examples: int | None = None,
    max_validation_examples: int | None = None,
    eval_samples: int | None = None,
    tokenization: str = "hptune",
) -> PreparedData:
    """Read, check and tokenize every split; labels cover the answer tokens only.

    Args:
        config: The data section.
        tokenizer: The model's tokenizer (its chat template renders chat data).
        max_train_examples: Keep only the first this many training examples.
        max_validation_examples: Keep only the first this many validation examples.
        eval_samples: How many validation examples text metrics score (a seeded subset, the
            same for every trial); ``None`` scores all.
        tokenization: ``hptune`` (its own rendering) or ``trl`` (TRL's rules; the training
            records are kept in TRL's shape for SFTTrainer).

    Returns:
        The tokenized splits with the prompts and references for text metrics.

    Raises:
        DataError: A file or record is malformed, or examples exceed ``data.max_length``.
    """
    sources, fmt = _read_checked(config, max_train_examples, max_validation_examples)
    fields = fmt.fields()
    tokenize_record, template = _tokenizer_of(fmt, tokenizer, tokenization)
    tokenized = {n: _tokenized(n, source, tokenize_record) for n, source in sources.items()}
    dropped = _drop_long(tokenized, sources, config)
    train_records = None
    if tokenization == "trl":
        train_records = [trl_record(fmt, r, tokenizer) for r in sources["train"].records]
    tables = {name: _table(rows) for name, rows in tokenized.items()}
    validation = tokenized["validation"]
    chosen = _scored_subset(len(validation), eval_samples)
    test = tokenized.get("test", [])
    records = {name: source.records for name, source in sources.items()}
    return PreparedData(
        train=tables["train"],
        validation=tables["validation"],
        validation_prompts=[validation[i].prompt_ids for i in chosen],
        validation_references=[validation[i].reference for i in chosen],
        test=tables.get("test"),
        test_prompts=[t.prompt_ids for t in test],
        test_references=[t.reference for t in test],
        fingerprints={name: fingerprint(r, fields) for name, r in records.items()},
        overlaps=split_overlaps(records, fields),
        format=fmt.name,
        format_description=_described(fmt, tokenization, tokenized["train"]),
        dropped=dropped,
        train_lengths=sorted(len(t.input_ids) for t in tokenized["train"]),
        example=tokenized["train"][0],
        n_validation=len(validation),
        train_records=train_records,
        trl_chat_template=template,
        longest=max(len(t.input_ids) for rows in tokenized.values() for t in rows),
    )


def _scored_subset(n_validation: int, eval_samples: int | None) -> list[int]:
    """The validation examples text metrics score: a seeded subset (the same for every
    trial) of ``eval_samples``, or all."""
    chosen = list(range(n_validation))
    if eval_samples is not None and eval_samples < len(chosen):
        chosen = sorted(random.Random(EVAL_SUBSET_SEED).sample(chosen, eval_samples))
    return chosen


def _read_checked(
    config: DataConfig, max_train: int | None, max_validation: int | None
) -> tuple[dict[str, Source], DataFormat]:
    """Every split read, its format resolved and each record checked; then only the first
    ``max_train`` / ``max_validation`` records kept (all with None)."""
    sources = read_sources(config)
    fmt = resolve_format(config, sources["train"].columns)
    for name, source in sources.items():
        _check_records(name, source, fmt, config)
    for split, limit in (("train", max_train), ("validation", max_validation)):
        if limit is not None and limit < len(sources[split].records):
            sources[split] = sources[split].take(list(range(limit)))
    return sources, fmt


def _table(rows: list[Tokenized]) -> Any:
    """A split's tokens as a ``datasets.Dataset``: input ids, attention mask, labels."""
    return datasets.Dataset.from_dict(
        {
            "input_ids": [t.input_ids for t in rows],
            "attention_mask": [[1] * len(t.input_ids) for t in rows],
            "labels": [t.labels for t in rows],
        }
    )


def _described(fmt: DataFormat, tokenization: str, train: list[Tokenized]) -> str:
    """The format's line for ``hptune plan`` and the setup: the rules, and TRL's prompt cuts."""
    if tokenization != "trl":
        return fmt.describe()
    cut = sum(t.prompt_cut for t in train)
    return (
        fmt.describe()
        + _TRL_RULES
        + (
            f"; the end of {cut} of {len(train)} training prompts merges with the answer's first "
            "tokens, and TRL leaves it out of training as at generation (end each prompt on a "
            "token boundary, e.g. without a trailing space, to keep it)"
            if cut
            else ""
        )
    )


def _tokenizer_of(
    fmt: DataFormat, tokenizer: Any, tokenization: str
) -> tuple[Callable[[dict[str, Any]], Tokenized], str | None]:
    """How a record becomes tokens (hptune's rendering, or TRL's rules), and the chat
    template TRL is to train with (None when hptune's rules apply or no template is used)."""
    if tokenization != "trl":
        return (lambda record: tokenize(fmt.render(record, tokenizer), tokenizer)), None
    conversations = getattr(fmt, "conversations", None)
    template = conversations.chat_template if conversations is not None else None
    if fmt.name == "chat":
        template = training_template(tokenizer, template)

    def tokenize_record(record: dict[str, Any]) -> Tokenized:
        return trl_tokenize(trl_record(fmt, record, tokenizer), tokenizer, template)

    return tokenize_record, template


def _tokenized(
    name: str, source: Source, tokenize_record: Callable[[dict[str, Any]], Tokenized]
) -> list[Tokenized]:
    """Every record of a split rendered and tokenized; a record the chat template refuses is
    named by its file and line."""
    rows = []
    for index, record in enumerate(source.records):
        try:
            rows.append(tokenize_record(record))
        except DataError as exc:
            raise DataError(f"data.{name}: {source.where[index]}: {exc}") from None
        except Exception as exc:  # a chat template's own checks raise anything (Jinja, ...)
            raise DataError(
                f"data.{name}: {source.where[index]}: the chat template refused the record "
                f"({type(exc).__name__}: {exc}); fix the record (e.g. roles that must "
                "alternate, a system turn the template does not take) or give another "
                "template as data.chat_template"
            ) from None
    return rows


def _drop_long(
    tokenized: dict[str, list[Tokenized]], sources: dict[str, Source], config: DataConfig
) -> dict[str, int]:
    """Drop (``data.drop_long``) or refuse examples longer than ``data.max_length``.

    A cut example would train on an answer without its end, or on none of it; a cut
    validation example would score a truncated answer.
    """
    dropped = {}
    for name, rows in tokenized.items():
        long = [i for i, t in enumerate(rows) if len(t.input_ids) > config.max_length]
        if not long:
            continue
        if not config.drop_long:
            longest = max(len(rows[i].input_ids) for i in long)
            raise DataError(
                f"data.{name}: {len(long)} of {len(rows)} examples are longer than "
                f"data.max_length = {config.max_length} tokens (the longest has {longest}; the "
                f"first is {sources[name].where[long[0]]}); raise data.max_length, or set "
                "data.drop_long: true to leave them out"
            )
        keep = set(long)
        tokenized[name] = [t for i, t in enumerate(rows) if i not in keep]
        sources[name] = sources[name].take([i for i in range(len(rows)) if i not in keep])
        if not tokenized[name]:
            raise DataError(
                f"data.{name}: every example is longer than data.max_length = "
                f"{config.max_length} tokens; raise data.max_length"
            )
        dropped[name] = len(long)
    return dropped
