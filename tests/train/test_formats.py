"""Data formats on the demo's real tokenizer: what is trained on, decoded back."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hptune.config import DataConfig
from hptune.demo._data import DEMO_CHAT_TEMPLATE
from hptune.exceptions import ConfigError, DataError
from hptune.train.data import prepare_data
from hptune.train.formats import (
    ALPACA_NO_INPUT,
    ALPACA_WITH_INPUT,
    AlpacaFormat,
    ChatFormat,
    DataFormat,
    PromptCompletionFormat,
    TemplateFormat,
    detect_format,
    tokenize,
)


@pytest.fixture(scope="module")
def tokenizer(demo_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_path / "model")


@pytest.fixture(scope="module")
def chat_tokenizer(demo_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo_path / "model")
    tokenizer.chat_template = DEMO_CHAT_TEMPLATE
    return tokenizer


def trained_text(tokenized, tokenizer) -> str:
    return tokenizer.decode([t for t in tokenized.labels if t != -100])


def untrained_text(tokenized, tokenizer) -> str:
    ids = [i for i, t in zip(tokenized.input_ids, tokenized.labels, strict=True) if t == -100]
    return tokenizer.decode(ids)


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 plus 2?"},
    {"role": "assistant", "content": "It is 4."},
    {"role": "user", "content": "And 3 plus 3?"},
    {"role": "assistant", "content": "It is 6."},
]


def test_chat_trains_on_every_assistant_turn_only(chat_tokenizer) -> None:
    fmt = ChatFormat(None)
    record = {"messages": CONVERSATION}
    assert fmt.problem(record) is None
    tokenized = tokenize(fmt.render(record, chat_tokenizer), chat_tokenizer)
    assert trained_text(tokenized, chat_tokenizer) == "It is 4.</s>\nIt is 6.</s>\n"
    read = untrained_text(tokenized, chat_tokenizer)
    assert "Be brief." in read and "What is 2 plus 2?" in read and "It is" not in read
    # generation continues the conversation before the last answer, at the assistant's header
    prompt = chat_tokenizer.decode(tokenized.prompt_ids)
    assert prompt.endswith("<|user|>\nAnd 3 plus 3?\n<|assistant|>\n")
    assert prompt.startswith("<s><|system|>") and tokenized.reference == "It is 6."
    # the whole sequence is what the template renders
    whole = chat_tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert chat_tokenizer.decode(tokenized.input_ids) == whole


def test_chat_without_a_template_names_the_setting(tokenizer) -> None:
    with pytest.raises(DataError, match=r"no chat template.*data\.chat_template \(a Jinja"):
        ChatFormat(None).render({"messages": CONVERSATION}, tokenizer)
    # the configured template serves a tokenizer that has none
    rendered = ChatFormat(DEMO_CHAT_TEMPLATE).render({"messages": CONVERSATION}, tokenizer)
    assert rendered.reference == "It is 6."


def test_a_template_that_is_not_prefix_stable_is_refused(tokenizer) -> None:
    # renders the last message first: no conversation's beginning is the beginning of the whole
    backwards = "{% for m in messages|reverse %}{{ m['content'] }}|{% endfor %}"
    with pytest.raises(DataError, match="does not render a conversation's beginning"):
        ChatFormat(backwards).render({"messages": CONVERSATION}, tokenizer)


def test_alpaca_uses_the_no_input_layout_when_input_is_empty_or_missing(tokenizer) -> None:
    fmt = AlpacaFormat()
    for record in ({"instruction": "Add 2 and 2.", "input": "", "output": "4"},
                   {"instruction": "Add 2 and 2.", "output": "4"}):  # fmt: skip
        assert fmt.problem(record) is None
        tokenized = tokenize(fmt.render(record, tokenizer), tokenizer)
        expected = ALPACA_NO_INPUT.format(instruction="Add 2 and 2.")
        assert untrained_text(tokenized, tokenizer) == "<s>" + expected
        assert trained_text(tokenized, tokenizer) == "4</s>"
    with_input = {"instruction": "Add them.", "input": "2 and 2", "output": "4"}
    tokenized = tokenize(fmt.render(with_input, tokenizer), tokenizer)
    expected = ALPACA_WITH_INPUT.format(instruction="Add them.", input="2 and 2")
    assert untrained_text(tokenized, tokenizer) == "<s>" + expected


def test_prompt_completion_trains_on_the_completion_only(chat_tokenizer) -> None:
    fmt = PromptCompletionFormat(None)
    text = {"prompt": "2 plus 2 is", "completion": " 4."}
    tokenized = tokenize(fmt.render(text, chat_tokenizer), chat_tokenizer)
    assert trained_text(tokenized, chat_tokenizer) == " 4.</s>"
    assert untrained_text(tokenized, chat_tokenizer) == "<s>2 plus 2 is"
    conversational = {"prompt": CONVERSATION[:4], "completion": CONVERSATION[4:]}
    assert fmt.problem(conversational) is None
    tokenized = tokenize(fmt.render(conversational, chat_tokenizer), chat_tokenizer)
    # the prompt's assistant turn is context here, as in TRL: only the completion trains
    assert trained_text(tokenized, chat_tokenizer) == "It is 6.</s>\n"
    assert fmt.problem({"prompt": CONVERSATION[:2], "completion": CONVERSATION[1:3]}) == (
        "a conversational completion holds assistant turns only"
    )


def test_template_tokenizes_prompt_then_answer(tokenizer) -> None:
    fmt = TemplateFormat("Q: {question}\nA: ", "question", "answer")
    tokenized = tokenize(fmt.render({"question": "2+2?", "answer": "4"}, tokenizer), tokenizer)
    prompt = tokenizer("Q: 2+2?\nA: ", add_special_tokens=False)["input_ids"]
    answer = tokenizer("4", add_special_tokens=False)["input_ids"]
    eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
    assert tokenized.input_ids == [bos, *prompt, *answer, eos]
    assert tokenized.labels == [-100] * (1 + len(prompt)) + [*answer, eos]
    assert tokenized.prompt_ids == [bos, *prompt]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('{"question": "{question}"}',
         r"'\{\"question\"\}' is not a field name.*'\{\{' and '\}\}'"),
        ("Q: {question", r"unbalanced braces"),
        ("Q: {question.text}", r"is not a field name"),
    ],
)  # fmt: skip
def test_template_brace_mistakes_explain_the_fix(template, message) -> None:
    from hptune.config import config_from_dict

    raw = {"model": {"path": "demo://model"}, "output_dir": "/tmp/x",
           "data": {"train": "a.jsonl", "validation": "b.jsonl", "template": template}}  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


@pytest.mark.parametrize(
    ("columns", "configured", "expected"),
    [
        (["messages"], {}, "chat"),
        (["instruction", "input", "output"], {}, "alpaca"),
        (["instruction", "output"], {}, "alpaca"),
        (["prompt", "completion"], {}, "prompt_completion"),
        (["question", "answer"], {}, "template"),
        (["messages"], {"template": "{q}"}, "template"),
        (["prompt", "completion"], {"format": "chat"}, "chat"),
    ],
)
def test_format_detection(columns, configured, expected) -> None:
    config = DataConfig(train="t.jsonl", validation="v.jsonl", **configured)
    assert detect_format(columns, config) == expected


BAD = [
    ({"messages": "hello"}, r"field 'messages' must be a non-empty list.*got a str"),
    ({"messages": [{"role": "robot", "content": "x"}]},
     r"message 1 of 'messages' has role 'robot'; the roles"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]},
     r"message 2 of 'messages' is an empty assistant turn"),
    ({"messages": [{"role": "user", "content": "q"}]},
     r"the conversation ends without an assistant turn"),
    ({"messages": [{"role": "user", "content": ["a", "b"]}]},
     r"message 1 of 'messages' \(user\): content must be text, got a list"),
    ({"messages": [["user", "q"]]}, r"message 1 of 'messages' is a list, not a \{role, content\}"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "message"), BAD)
def test_a_chat_record_of_the_wrong_shape_is_refused_with_file_and_line(
    tmp_path, chat_tokenizer, record, message
) -> None:
    good = {"messages": CONVERSATION[1:3]}
    lines = [json.dumps(good), json.dumps(good), json.dumps(record)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "val.jsonl").write_text(json.dumps(good) + "\n")
    config = DataConfig(train=str(tmp_path / "train.jsonl"), validation=str(tmp_path / "val.jsonl"))
    with pytest.raises(DataError, match=r"^data\.train: .*train\.jsonl:3: " + message):
        prepare_data(config, chat_tokenizer)


def test_alpaca_with_empty_inputs_reads_the_same_from_jsonl_and_a_json_array(
    tmp_path, tokenizer
) -> None:
    rows = [{"instruction": f"Add {i} and {i}.", "input": "" if i % 2 else f"{i}", "output": "x"}
            for i in range(4)]  # fmt: skip
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a.json").write_text(json.dumps(rows))
    got = [
        prepare_data(
            DataConfig(train=str(tmp_path / name), validation=str(tmp_path / name)), tokenizer
        )
        for name in ("a.jsonl", "a.json")
    ]
    assert got[0].format == got[1].format == "alpaca"
    assert got[0].train["input_ids"] == got[1].train["input_ids"]


def test_a_number_is_never_turned_into_text(tmp_path, tokenizer) -> None:
    (tmp_path / "t.jsonl").write_text('{"question": "q", "answer": "a"}\n{"question": "q", '
                                      '"answer": 42}\n')  # fmt: skip
    config = DataConfig(train=str(tmp_path / "t.jsonl"), validation=str(tmp_path / "t.jsonl"))
    with pytest.raises(DataError, match=r"t\.jsonl:2: field 'answer' is a number \(42\), not text"):
        prepare_data(config, tokenizer)


FORMATS: list[DataFormat] = [
    ChatFormat(DEMO_CHAT_TEMPLATE),
    AlpacaFormat(),
    PromptCompletionFormat(DEMO_CHAT_TEMPLATE),
    TemplateFormat("Q: {question}\nA: ", "question", "answer"),
]
VALID = {
    "chat": {"messages": CONVERSATION},
    "alpaca": {"instruction": "Add 2 and 2.", "input": "", "output": "4"},
    "prompt_completion": {"prompt": CONVERSATION[:4], "completion": CONVERSATION[4:]},
    "template": {"question": "2+2?", "answer": "4"},
}


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_every_format_keeps_the_contract(fmt, tokenizer) -> None:
    """A valid record has no problem, its fields are present, the reference is trained on,
    the prompt is everything before the last answer (earlier answers included), and a record
    without its fields is refused with a sentence (never an exception)."""
    record = VALID[fmt.name]
    assert fmt.problem(record) is None
    assert set(fmt.fields()) <= set(record) | {"input"}
    tokenized = tokenize(fmt.render(record, tokenizer), tokenizer)
    assert len(tokenized.input_ids) == len(tokenized.labels)
    assert tokenized.reference in trained_text(tokenized, tokenizer)
    assert tokenized.input_ids[: len(tokenized.prompt_ids)] == tokenized.prompt_ids
    assert tokenized.labels[len(tokenized.prompt_ids)] != -100
    assert tokenized.labels[len(tokenized.prompt_ids) - 1] == -100  # the answer's header
    assert isinstance(fmt.problem({}), str) and fmt.describe().startswith(fmt.name)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
ROLE = st.sampled_from(["system", "user", "assistant", "tool", "", None, 3])
MESSAGE = st.fixed_dictionaries({"role": ROLE, "content": JSON | st.text(max_size=8)})
RECORD = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=4) | JSON}),
    st.fixed_dictionaries({"instruction": JSON, "input": JSON, "output": JSON}),
    st.fixed_dictionaries(
        {
            "prompt": st.lists(MESSAGE, max_size=3) | JSON,
            "completion": st.lists(MESSAGE, max_size=2) | JSON,
        }
    ),
    st.fixed_dictionaries({"question": JSON, "answer": JSON}),
    st.dictionaries(st.text(max_size=8), JSON, max_size=3),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(RECORD, min_size=1, max_size=3))
def test_fuzzed_records_never_give_a_traceback(tmp_path_factory, chat_tokenizer, records) -> None:
    """Wrong types, roles and nesting: either trained on, or refused with a DataError."""
    path = tmp_path_factory.mktemp("fuzz") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = DataConfig(train=str(path), validation=str(path), max_length=512)
    try:
        data = prepare_data(config, chat_tokenizer)
    except DataError as exc:
        assert "Traceback" not in str(exc) and str(exc).startswith("data.")
    else:
        assert data.n_train == len(records)


def test_a_record_the_chat_template_refuses_is_named_by_file_and_line(tmp_path, tokenizer) -> None:
    """Templates check conversations themselves (Gemma: no system role; Llama 2: roles must
    alternate); what they raise becomes one error naming the record."""
    strict = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
              "supported') }}{% endif %}" + DEMO_CHAT_TEMPLATE)  # fmt: skip
    good = {"messages": CONVERSATION[1:3]}
    (tmp_path / "t.jsonl").write_text(
        json.dumps(good) + "\n" + json.dumps({"messages": CONVERSATION}) + "\n"
    )
    config = DataConfig(train=str(tmp_path / "t.jsonl"), validation=str(tmp_path / "t.jsonl"),
                        chat_template=strict)  # fmt: skip
    with pytest.raises(DataError, match=r"^data\.train: .*t\.jsonl:2: the chat template refused "
                       r"the record \(TemplateError: System role not supported\)"):  # fmt: skip
        prepare_data(config, tokenizer)


def test_message_keys_arrow_fills_with_none_are_not_extra(tokenizer) -> None:
    import datasets

    rows = [{"messages": [{"role": "user", "content": "q", "name": "ann"},
                          {"role": "assistant", "content": "a"}]}] * 2  # fmt: skip
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                                   "validation": datasets.Dataset.from_list(rows)})  # fmt: skip
    assert splits["train"][0]["messages"][1]["name"] is None  # what Arrow gives back
    config = DataConfig(dataset=splits, chat_template=DEMO_CHAT_TEMPLATE)
    with pytest.raises(DataError, match=r"record 1: message 1 of 'messages' has keys name"):
        prepare_data(config, tokenizer)  # a real extra key is still refused ...
    plain = [{"messages": [{"role": "user", "content": "q", "name": None},
                           {"role": "assistant", "content": "a", "name": None}]}] * 2  # fmt: skip
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(plain),
                                   "validation": datasets.Dataset.from_list(plain)})  # fmt: skip
    assert prepare_data(DataConfig(dataset=splits, chat_template=DEMO_CHAT_TEMPLATE),
                        tokenizer).n_train == 2  # ... a None one is not  # fmt: skip
