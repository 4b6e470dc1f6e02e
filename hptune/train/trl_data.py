"""TRL's own data path (``data.tokenization: trl``, the default with ``backend: sft``).

SFTTrainer is handed the raw records, in TRL's shapes (``messages``; ``prompt`` /
``completion``), and formats, masks and packs them itself, exactly as a user's SFTTrainer
script does. hptune still validates each example alone, so it tokenizes the validation (and
test) records by the same rules TRL trains by, and counts the training tokens the same way for
the memory model and the budget:

- ``messages``: the chat template renders the whole conversation; the tokens its
  ``{% generation %}`` markers enclose train (TRL's ``assistant_only_loss``). A template
  without markers is replaced by TRL's training template for it, as SFTTrainer does.
- ``prompt`` / ``completion`` text: the EOS text ends the completion; the prompt and the
  prompt + completion are tokenized as wholes (the tokenizer's own special tokens, e.g. a
  BOS), and the tokens after their common prefix train (``completion_only_loss``).
- conversational ``prompt`` / ``completion``: the same, each rendered by the chat template.

``tests/train/test_trl_data.py`` checks these rules against a real SFTTrainer's prepared data.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from hptune.exceptions import DataError
from hptune.train.formats import Tokenized

if TYPE_CHECKING:
    from hptune.train.formats import DataFormat

__all__ = ["sft_dataset", "sft_tokenizer", "training_template", "trl_record", "trl_tokenize"]

# TRL's own test of a template (trl.chat_template_utils.has_generation_markers: trim variants
# included), written here as TRL is optional.
_MARKERS = r"\{%-?\s*generation\s*-?%\}"


def trl_record(fmt: DataFormat, record: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """A checked record in TRL's shape: what SFTTrainer is given.

    Args:
        fmt: The data's format.
        record: One record, already checked by ``fmt``.
        tokenizer: The model's tokenizer (templates render alpaca and template records).

    Returns:
        ``{"messages": ...}`` for chat data, else ``{"prompt": ..., "completion": ...}``.
    """
    if fmt.name == "chat":
        return {"messages": [_message(m) for m in record["messages"]]}
    if fmt.name == "prompt_completion":
        prompt, completion = record["prompt"], record["completion"]
        if isinstance(prompt, list):
            return {
                "prompt": [_message(m) for m in prompt],
                "completion": [_message(m) for m in completion],
            }
        return {"prompt": prompt, "completion": completion}
    rendered = fmt.render(record, tokenizer)  # alpaca, template: the prompt text, the answer
    first = next(i for i, (_, trained) in enumerate(rendered.pieces) if trained)
    return {
        "prompt": "".join(text for text, _ in rendered.pieces[:first]),
        "completion": "".join(text for text, _ in rendered.pieces[first:]),
    }


def _message(message: dict[str, Any]) -> dict[str, Any]:
    return {"role": message["role"], "content": message["content"]}


def training_template(tokenizer: Any, template: str | None) -> str:
    """The chat template TRL trains conversations with: ``template`` (or the tokenizer's) when
    it marks the assistant turns with ``{% generation %}``, else TRL's training version of it.

    Raises:
        DataError: There is no template, or it has no markers and TRL has no training
            version of it.
    """
    template = template or getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        raise DataError(
            "the tokenizer has no chat template, so chat data cannot be rendered; give one as "
            "data.chat_template (a Jinja string, or the path of a .jinja file)"
        )
    if re.search(_MARKERS, template):
        return str(template)
    try:
        from trl.chat_template_utils import get_training_chat_template

        marked = get_training_chat_template(_with_template(tokenizer, template))
    except Exception:  # not installed, or a template TRL has no training version of
        marked = None
    if not marked:
        raise DataError(
            "the chat template does not mark the assistant turns with {% generation %} ... "
            "{% endgeneration %}, which TRL's assistant_only_loss needs to know which tokens "
            "train, and TRL has no training version of it; add the markers around each "
            "assistant message (see examples/chat_template.jinja), or set "
            "data.tokenization: hptune to train every assistant turn by hptune's own rendering"
        )
    return str(marked)


def _with_template(tokenizer: Any, template: str) -> Any:
    import copy

    clone = copy.copy(tokenizer)  # the shared tokenizer keeps its own template
    clone.chat_template = template
    return clone


def trl_tokenize(example: dict[str, Any], tokenizer: Any, template: str | None) -> Tokenized:
    """``example`` (TRL's shape) as TRL tokenizes it for training, with the prompt that
    generates its last answer.

    Args:
        example: A record from :func:`trl_record`.
        tokenizer: The model's tokenizer.
        template: The chat template (from :func:`training_template` for ``messages``).

    Returns:
        Its token ids, labels (``-100`` where nothing trains), prompt and reference.

    Raises:
        DataError: A conversation has no assistant token to train.
    """
    if "messages" in example:
        messages = example["messages"]
        whole = _chat(tokenizer, messages, template, return_assistant_tokens_mask=True)
        ids, mask = list(whole["input_ids"]), list(whole["assistant_masks"])
        if 1 not in mask:
            raise DataError(
                "the chat template marks no token of this conversation as the assistant's "
                "({% generation %} encloses nothing): nothing would train; fix the template"
            )
        labels = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
        prompt = _chat(tokenizer, messages[:-1], template, add_generation_prompt=True)
        start = _common_prefix(list(prompt["input_ids"]), ids)
        return Tokenized(
            input_ids=ids,
            labels=labels,
            prompt_ids=ids[:start],
            reference=str(messages[-1]["content"]),
        )
    prompt, completion = example["prompt"], example["completion"]
    if isinstance(prompt, list):
        prompt_ids = list(
            _chat(tokenizer, prompt, template, add_generation_prompt=True)["input_ids"]
        )
        ids = list(_chat(tokenizer, prompt + completion, template)["input_ids"])
        reference = str(completion[-1]["content"])
    else:
        eos = tokenizer.eos_token
        ended = completion if completion.endswith(eos) else completion + eos
        prompt_ids = list(tokenizer(text=prompt)["input_ids"])
        ids = list(tokenizer(text=prompt + ended)["input_ids"])
        reference = completion
    start = _common_prefix(prompt_ids, ids)
    labels = [-100] * start + ids[start:]
    return Tokenized(
        input_ids=ids,
        labels=labels,
        prompt_ids=ids[:start],
        reference=reference,
        prompt_cut=start < len(prompt_ids),
    )


def _chat(tokenizer: Any, messages: list[Any], template: str | None, **options: Any) -> Any:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=True, return_dict=True, **options
    )


def _common_prefix(a: list[int], b: list[int]) -> int:
    # TRL's rule (trl.data_utils.common_prefix_length): the completion starts where the
    # prompt's tokens and the whole example's part; written here as TRL is optional.
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def sft_dataset(train: Any, records: list[dict[str, Any]] | None) -> Any:
    """SFTTrainer's training set: the raw records in TRL's shape (TRL's data path), or
    hptune's tokens with their completion mask (``data.tokenization: hptune``: every token
    hptune trains, every assistant turn of a conversation too, goes in as the completion).

    Args:
        train: hptune's tokenized training split (``PreparedData.train``).
        records: The training records in TRL's shape (``PreparedData.train_records``).

    Returns:
        A ``datasets.Dataset``.
    """
    if records is None:
        return train.map(
            lambda row: {"completion_mask": [int(x != -100) for x in row["labels"]]},
            remove_columns=["labels"],
        )
    from datasets import Dataset

    return Dataset.from_list(records)


def sft_tokenizer(tokenizer: Any, template: str | None) -> Any:
    """The tokenizer SFTTrainer renders conversations with: with TRL's data path, a copy
    holding the chat template hptune renders with (hptune passes it as an argument and leaves
    the shared tokenizer as loaded).

    Args:
        tokenizer: The model's tokenizer.
        template: ``PreparedData.trl_chat_template``.

    Returns:
        ``tokenizer``, or a copy with its chat template set.
    """
    return tokenizer if template is None else _with_template(tokenizer, template)
