"""The data section: where the records are, their format, and how long an example may be."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from hptune.config._backends import BACKENDS
from hptune.config._base import _Strict

__all__ = ["SPLIT_ALIASES", "DataConfig", "template_fields"]

#: The names a dataset's splits go by, tried in this order.
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "val", "valid", "eval", "dev"),
    "test": ("test",),
}

DataFormatName = Literal["auto", "chat", "alpaca", "prompt_completion", "template"]


def template_fields(template: str) -> list[str]:
    """The field names a ``str.format`` template reads, in order.

    Args:
        template: The prompt template, e.g. ``"Question: {question}\\nAnswer: "``.

    Returns:
        The names in braces, in order (repeats kept).

    Raises:
        ValueError: The template has unbalanced braces, names no field, or a brace holds
            something that is not a plain field name (such as literal JSON); the message
            gives the ``{{`` / ``}}`` fix.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"data.template has unbalanced braces ({exc}); write a literal brace as '{{{{' or "
            "'}}}}', and a field as {name}"
        ) from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(
                f"data.template: '{{{name}}}' is not a field name; a field is written {{name}} "
                "and a literal brace (as in JSON) as '{{' and '}}', e.g. "
                '\'{{"question": "{question}"}}\''
            )
        names.append(name)
    if not names:
        raise ValueError(
            "data.template must name record fields in braces, e.g. 'Question: {question}\\n"
            "Answer: '"
        )
    return names


class DataConfig(_Strict):
    """The data: files per split, a saved or hub dataset, or an in-memory ``DatasetDict``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    #: The training split: a .jsonl, .json, .csv or .parquet file (or ``demo://...``).
    train: str | None = None
    #: The validation split every decision is scored on.
    validation: str | None = None
    #: The test split: measured once, at the end, never used for a decision.
    test: str | None = None
    #: A dataset instead of files: a hub id (read from the local Hugging Face cache), a folder
    #: written by ``save_to_disk``, or, from Python, a ``datasets.DatasetDict``.
    dataset: Any = Field(None, exclude=True)
    #: The dataset's split names when they are not the usual ones, e.g. ``{validation: dev}``
    #: (``validation``, ``val``, ``valid``, ``eval`` and ``dev`` are found by themselves).
    split_names: dict[Literal["train", "validation", "test"], str] | None = None
    #: Without a validation split: hold out this share of the training records (a seeded,
    #: deterministic choice) to validate on.
    validation_fraction: float | None = Field(None, gt=0, lt=1)
    #: The seed of that choice.
    split_seed: int = 0
    #: How records are laid out: ``auto`` detects it from their fields (``messages``: chat;
    #: ``instruction``/``output``: alpaca; ``prompt``/``completion``: prompt_completion;
    #: otherwise the template or the prompt and response fields).
    format: DataFormatName = "auto"
    #: A chat template (Jinja text, or a file's path) for chat data when the tokenizer has
    #: none, or to replace its own.
    chat_template: str | None = None
    #: The template format: the record field holding the prompt (when no template is given).
    prompt_field: str = "question"
    #: The template format: the field holding the answer, the only tokens trained and scored.
    response_field: str = "answer"
    #: The template format: a prompt naming record fields in braces, e.g.
    #: ``Question: {question}``. A literal brace is written ``{{`` or ``}}``.
    template: str | None = None
    #: Tokens per example (prompt + answer). A longer example is refused, or dropped with
    #: ``drop_long``: it is never cut. TRL's older ``max_seq_length`` is read as this.
    max_length: int = Field(
        256, gt=8, validation_alias=AliasChoices("max_length", "max_seq_length")
    )
    #: Leave out examples longer than ``max_length`` (``hptune plan`` says how many).
    drop_long: bool = False
    #: Whose rules turn records into trained tokens: ``trl`` hands SFTTrainer the raw records
    #: (``messages``, ``prompt``/``completion``) to format, mask and pack as a user's
    #: SFTTrainer script does, and validates by the same rules (``hptune.train.trl_data``);
    #: ``hptune`` renders each piece itself (every assistant turn trains with its line end, a
    #: BOS token is always added). ``auto``: ``trl`` with ``training.backend: sft``.
    tokenization: Literal["auto", "hptune", "trl"] = "auto"

    def tokenization_for(self, backend: str) -> Literal["hptune", "trl"]:
        """The tokenization rules a run on ``backend`` uses (``auto`` resolved).

        Args:
            backend: ``training.backend``: ``auto`` is what it declares (``trl`` for sft).

        Returns:
            ``trl`` or ``hptune``.
        """
        if self.tokenization != "auto":
            return self.tokenization
        return BACKENDS[backend].tokenization

    @field_validator("template")
    @classmethod
    def _template_valid(cls, template: str | None) -> str | None:
        if template is not None:
            template_fields(template)
        return template

    @field_validator("dataset")
    @classmethod
    def _dataset_kind(cls, dataset: Any) -> Any:
        if dataset is None or isinstance(dataset, str) or hasattr(dataset, "keys"):
            return dataset
        raise ValueError(
            "data.dataset must be a hub dataset id, a save_to_disk folder, or (from Python) a "
            f"datasets.DatasetDict, not a {type(dataset).__name__}"
        )

    @model_validator(mode="after")
    def _splits_given(self) -> DataConfig:
        files = [s for s in ("train", "validation", "test") if getattr(self, s) is not None]
        if self.dataset is not None:
            if files:
                raise ValueError(
                    f"give either data.dataset or files ({', '.join('data.' + f for f in files)}), "
                    "not both"
                )
            if not isinstance(self.dataset, str):
                self._dataset_has_splits()
            return self
        if self.train is None or (self.validation is None and self.validation_fraction is None):
            raise ValueError(
                "give data.train and data.validation (file paths), or data.train with "
                "data.validation_fraction, or a dataset as data.dataset; tuning on the test "
                "split is never allowed"
            )
        if self.validation is not None and self.validation_fraction is not None:
            raise ValueError(
                "data.validation and data.validation_fraction are both given; keep one"
            )
        return self

    def _dataset_has_splits(self) -> None:
        names = dict(self.split_names or {})
        for split in ("train", "validation"):
            wanted = (names[split],) if split in names else SPLIT_ALIASES[split]
            if split == "validation" and self.validation_fraction is not None:
                continue
            if not any(w in self.dataset for w in wanted):
                raise ValueError(
                    f"the dataset has no {split} split (splits: {', '.join(self.dataset)}); "
                    "name it with data.split_names"
                    + (" or set data.validation_fraction" if split == "validation" else "")
                )


def folder_as_file(split: str, path: Path) -> str:
    """What to say when ``data.<split>`` names a folder: a ``save_to_disk`` folder is
    ``data.dataset``'s; anything else needs a file.

    Args:
        split: ``train``, ``validation`` or ``test``.
        path: The folder.

    Returns:
        One sentence naming the problem and the fix.
    """
    saved = (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()
    fix = (
        "it holds a dataset written by save_to_disk: give it as data.dataset (and leave "
        "data.train out)"
        if saved
        else "give a .jsonl, .json, .csv or .parquet file, or, for a folder written by "
        "Dataset.save_to_disk, data.dataset"
    )
    return f"data.{split}: {str(path)!r} is a folder, not a file; {fix}"
