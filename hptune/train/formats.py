"""Data formats: how a record becomes text pieces, some trained on, some only read.

A format checks one record's shape (`DataFormat.problem`) and renders it
(`DataFormat.render`) into pieces of text in order, each marked trained or not, plus
the reference a text metric compares the generated answer with. `tokenize` turns the
pieces into ``input_ids`` and ``labels`` (``-100`` where nothing is trained), the same way for
every format, so every format trains only on its answer tokens.

- ``template``: a ``str.format`` template over the record's fields, then the response field.
- ``alpaca``: ``instruction``, optional ``input``, ``output``, in the Stanford Alpaca layouts.
- ``prompt_completion``: TRL's ``prompt`` / ``completion``, as text or as conversations.
- ``chat``: a ``messages`` list, rendered with the tokenizer's chat template; every
  assistant turn is trained.

Nothing is ever turned into text with ``str()``: a value of the wrong type is a problem.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hptune.config import template_fields
from hptune.exceptions import DataError

if TYPE_CHECKING:
    from hptune.config import DataConfig

__all__ = [
    "FORMATS",
    "DataFormat",
    "Rendered",
    "Tokenized",
    "detect_format",
    "make_format",
    "tokenize",
]

ROLES = ("system", "user", "assistant")

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)


@dataclass(frozen=True)
class Rendered:
    """A record as text pieces in order, each trained on (the answer) or only read."""

    pieces: tuple[tuple[str, bool], ...]
    #: The text the metrics compare a generated answer with: the last trained piece's content.
    reference: str
    #: Start with the tokenizer's BOS token (formats whose text does not hold it already).
    bos: bool = True
    #: End the answer with the EOS token, trained (a chat template writes its own end).
    eos: bool = True


@dataclass(frozen=True)
class Tokenized:
    """A rendered record as token ids: for training, and the prompt that generates its answer."""

    input_ids: list[int]
    labels: list[int]
    #: The tokens before the last answer: what generation continues.
    prompt_ids: list[int]
    reference: str
    #: TRL's rules: the prompt's own tokens were not a prefix of the example's (they merge
    #: across its end), so its last tokens are left out as TRL leaves them out.
    prompt_cut: bool = False


class DataFormat(ABC):
    """One way records are laid out. Subclasses are stateless apart from their settings."""

    name: ClassVar[str]

    @abstractmethod
    def fields(self) -> tuple[str, ...]:
        """The fields a record must have (their values identify an example)."""

    @abstractmethod
    def problem(self, record: dict[str, Any]) -> str | None:
        """What is wrong with the record's shape, in one sentence with the fix, or ``None``."""

    @abstractmethod
    def render(self, record: dict[str, Any], tokenizer: Any) -> Rendered:
        """The record as pieces of text; call only on records without a `problem`."""

    def describe(self) -> str:
        """One line for ``hptune plan``: the format and what it trains on."""
        return self.name


def _text_problem(record: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = record.get(name)
    if value is None and not optional:
        return (
            f"field {name!r} is empty (null)"
            if name in record
            else f"the record has no field {name!r}"
        )
    if value is None:
        return None
    if not isinstance(value, str):
        return (
            f"field {name!r} is a {_kind(value)} ({_short(value)}), not text; write it as a "
            'JSON string (e.g. "42")'
        )
    if not optional and not value.strip():
        return f"field {name!r} is empty"
    return None


def _kind(value: Any) -> str:
    kinds = {bool: "boolean", int: "number", float: "number", list: "list", dict: "mapping"}
    return kinds.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class TemplateFormat(DataFormat):
    """``template`` (a ``str.format`` template) or ``prompt_field``, then ``response_field``."""

    name = "template"

    def __init__(self, template: str | None, prompt_field: str, response_field: str) -> None:
        self.template = template
        self.prompt_fields = template_fields(template) if template is not None else [prompt_field]
        self.response_field = response_field

    def fields(self) -> tuple[str, ...]:
        return (*dict.fromkeys(self.prompt_fields), self.response_field)

    def problem(self, record: dict[str, Any]) -> str | None:
        for name in self.fields():
            found = _text_problem(record, name)
            if found is not None:
                return found
        return None

    def render(self, record: dict[str, Any], tokenizer: Any) -> Rendered:
        if self.template is not None:
            prompt = self.template.format_map({n: record[n] for n in self.prompt_fields})
        else:
            prompt = f"{record[self.prompt_fields[0]]}\n"
        answer = record[self.response_field]
        return Rendered(pieces=((prompt, False), (answer, True)), reference=answer)

    def describe(self) -> str:
        shown = repr(self.template) if self.template else f"{{{self.prompt_fields[0]}}}\\n"
        return f"template {shown}, trained on {self.response_field!r}"


class AlpacaFormat(DataFormat):
    """Alpaca: ``instruction``, ``input`` (missing or empty is normal), ``output``."""

    name = "alpaca"

    def fields(self) -> tuple[str, ...]:
        return ("instruction", "input", "output")

    def problem(self, record: dict[str, Any]) -> str | None:
        return (
            _text_problem(record, "instruction")
            or _text_problem(record, "input", optional=True)
            or _text_problem(record, "output")
        )

    def render(self, record: dict[str, Any], tokenizer: Any) -> Rendered:
        extra = record.get("input") or ""
        if extra.strip():
            prompt = ALPACA_WITH_INPUT.format(instruction=record["instruction"], input=extra)
        else:
            prompt = ALPACA_NO_INPUT.format(instruction=record["instruction"])
        return Rendered(
            pieces=((prompt, False), (record["output"], True)), reference=record["output"]
        )

    def describe(self) -> str:
        return "alpaca (instruction, optional input, output), trained on 'output'"


class _Conversations:
    """Chat-template rendering shared by ``chat`` and conversational ``prompt_completion``."""

    def __init__(self, chat_template: str | None) -> None:
        self.chat_template = chat_template

    def _render(self, tokenizer: Any, messages: list[dict[str, Any]], *, generation: bool) -> str:
        template = self.chat_template or getattr(tokenizer, "chat_template", None)
        if not template:
            raise DataError(
                "the tokenizer has no chat template, so chat data cannot be rendered; give one "
                "as data.chat_template (a Jinja string, or the path of a .jinja file), or use "
                "data.format: template with your own prompt layout"
            )
        text: str = tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m["content"]} for m in messages],
            chat_template=template,
            tokenize=False,
            add_generation_prompt=generation,
        )
        return text

    def pieces(
        self, tokenizer: Any, messages: list[dict[str, Any]], first_trained: int
    ) -> Rendered:
        """Every assistant turn from index ``first_trained`` on is trained; the rest is read."""
        whole = self._render(tokenizer, messages, generation=False)
        pieces: list[tuple[str, bool]] = []
        done = 0
        for index, message in enumerate(messages):
            if message["role"] != "assistant" or index < first_trained:
                continue
            before = self._render(tokenizer, messages[:index], generation=True)
            through = self._render(tokenizer, messages[: index + 1], generation=False)
            if not (
                whole.startswith(through) and through.startswith(before) and len(before) >= done
            ):
                raise DataError(
                    "the chat template does not render a conversation's beginning as the "
                    "beginning of the whole conversation, so the assistant turns cannot be "
                    "marked for training; give a template that does as data.chat_template"
                )
            pieces += [
                (whole[done : len(before)], False),
                (whole[len(before) : len(through)], True),
            ]
            done = len(through)
        pieces.append((whole[done:], False))
        kept = tuple((text, trained) for text, trained in pieces if text)
        return Rendered(pieces=kept, reference=messages[-1]["content"], bos=False, eos=False)


def _messages_problem(value: Any, name: str) -> str | None:
    if not isinstance(value, list) or not value:
        got = "missing" if value is None else f"a {_kind(value)} ({_short(value)})"
        return f"field {name!r} must be a non-empty list of {{role, content}} messages, got {got}"
    for number, message in enumerate(value, 1):
        which = f"message {number} of {name!r}"
        if not isinstance(message, dict):
            return f"{which} is a {_kind(message)}, not a {{role, content}} mapping"
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            return f"{which} has role {_short(role)}; the roles are {', '.join(ROLES)}"
        if not isinstance(content, str):
            got = "missing" if content is None else f"a {_kind(content)} ({_short(content)})"
            return f"{which} ({role}): content must be text, got {got}"
        if role == "assistant" and not content.strip():
            return f"{which} is an empty assistant turn; give its answer or drop it"
        # Arrow fills every key of the schema; a key left None is not there
        extra = {k for k, v in message.items() if v is not None} - {"role", "content"}
        if extra:
            return (
                f"{which} has keys {', '.join(sorted(extra))} besides role and content (tool "
                "calls are not supported)"
            )
    return None


class ChatFormat(DataFormat):
    """Chat: a ``messages`` list ending with an assistant turn; every assistant turn trains."""

    name = "chat"

    def __init__(self, chat_template: str | None) -> None:
        self.conversations = _Conversations(chat_template)

    def fields(self) -> tuple[str, ...]:
        return ("messages",)

    def problem(self, record: dict[str, Any]) -> str | None:
        found = _messages_problem(record.get("messages"), "messages")
        if found is None and record["messages"][-1]["role"] != "assistant":
            return "the conversation ends without an assistant turn, so it has nothing to learn"
        return found

    def render(self, record: dict[str, Any], tokenizer: Any) -> Rendered:
        return self.conversations.pieces(tokenizer, record["messages"], 0)

    def describe(self) -> str:
        return "chat (messages, the tokenizer's chat template), trained on assistant turns"


class PromptCompletionFormat(DataFormat):
    """TRL's ``prompt`` / ``completion``: two texts, or two message lists; the completion trains."""

    name = "prompt_completion"

    def __init__(self, chat_template: str | None) -> None:
        self.conversations = _Conversations(chat_template)

    def fields(self) -> tuple[str, ...]:
        return ("prompt", "completion")

    def problem(self, record: dict[str, Any]) -> str | None:
        prompt, completion = record.get("prompt"), record.get("completion")
        if isinstance(prompt, list) or isinstance(completion, list):
            found = _messages_problem(prompt, "prompt")
            found = found or _messages_problem(completion, "completion")
            if found is not None:
                return found
            if any(m["role"] != "assistant" for m in record["completion"]):
                return "a conversational completion holds assistant turns only"
            return None
        return _text_problem(record, "prompt") or _text_problem(record, "completion")

    def render(self, record: dict[str, Any], tokenizer: Any) -> Rendered:
        prompt, completion = record["prompt"], record["completion"]
        if isinstance(prompt, list):
            return self.conversations.pieces(tokenizer, prompt + completion, len(prompt))
        return Rendered(pieces=((prompt, False), (completion, True)), reference=completion)

    def describe(self) -> str:
        return "prompt_completion (prompt, completion), trained on the completion"


FORMATS = ("chat", "alpaca", "prompt_completion", "template")


def detect_format(columns: list[str], config: DataConfig) -> str:
    """The format ``data.format: auto`` takes for records with these fields.

    A template given in the configuration means ``template``; then a ``messages`` field
    means ``chat``; ``instruction`` and ``output`` mean ``alpaca``; ``prompt`` and
    ``completion`` mean ``prompt_completion``; anything else ``template`` (the prompt and
    response fields).
    """
    if config.format != "auto":
        return config.format
    present = set(columns)
    if config.template is not None:
        return "template"
    if "messages" in present:
        return "chat"
    if {"instruction", "output"} <= present:
        return "alpaca"
    if {"prompt", "completion"} <= present:
        return "prompt_completion"
    return "template"


def make_format(name: str, config: DataConfig, chat_template: str | None = None) -> DataFormat:
    """The format called ``name`` with the configuration's settings."""
    if name == "chat":
        return ChatFormat(chat_template)
    if name == "alpaca":
        return AlpacaFormat()
    if name == "prompt_completion":
        return PromptCompletionFormat(chat_template)
    return TemplateFormat(config.template, config.prompt_field, config.response_field)


def tokenize(rendered: Rendered, tokenizer: Any) -> Tokenized:
    """Token ids and labels of a rendered record; labels are ``-100`` on untrained pieces.

    Each piece is tokenized on its own (no special tokens added), so the prompt that
    generates an answer is exactly the tokens the model was trained to continue.
    """
    ids: list[int] = []
    labels: list[int] = []
    if rendered.bos and tokenizer.bos_token_id is not None:
        ids.append(tokenizer.bos_token_id)
        labels.append(-100)
    prompt_end = 0
    for text, trained in rendered.pieces:
        piece: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
        if trained:
            prompt_end = len(ids)
        ids += piece
        labels += piece if trained else [-100] * len(piece)
    if rendered.eos:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return Tokenized(
        input_ids=ids, labels=labels, prompt_ids=ids[:prompt_end], reference=rendered.reference
    )
