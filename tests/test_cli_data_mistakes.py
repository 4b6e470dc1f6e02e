"""Each data mistake a new user makes: one paragraph naming the problem and the fix, exit 2,
no traceback, nothing written (``hptune plan`` and ``hptune run``)."""

import json

import pytest
import yaml

from hptune.cli import main
from tests.conftest import tiny_config

CHAT = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def _records(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def chat_named_as_fields(tmp_path, data):
    path = _records(tmp_path / "c.jsonl", [CHAT] * 4)
    data.update(train=path, validation=path, format="template", prompt_field="messages",
                response_field="messages")  # fmt: skip
    data.pop("template")
    return r"c\.jsonl:1: field 'messages' is a list \(.*\), not text"


def chat_without_template(tmp_path, data):
    data.update(
        train=_records(tmp_path / "c.jsonl", [CHAT] * 4), validation=str(tmp_path / "c.jsonl")
    )
    data.pop("template")
    return r"the tokenizer has no chat template.*data\.chat_template"


def template_names_missing_field(tmp_path, data):
    rows = [{"instruction": "i", "output": "o"}] * 4
    data.update(train=_records(tmp_path / "a.jsonl", rows), validation=str(tmp_path / "a.jsonl"))
    return r"a\.jsonl:1: the record has no field 'question' \(fields present: instruction, output"


def template_with_json_braces(tmp_path, data):
    data["template"] = '{"question": "{question}"}'
    return r"not a field name.*literal brace \(as in JSON\) as '\{\{' and '\}\}'"


def missing_local_model(tmp_path, data):
    (tmp_path / "models").mkdir()
    return r"model\.path: '[^']*/models/llama-3-8b' does not exist"


def overlong(tmp_path, data):
    data["max_length"] = 20
    return r"data\.train: \d+ of 96 examples are longer than data\.max_length = 20.*drop_long"


def metric_module_missing(tmp_path, data):
    return r"objective\.metric: cannot import 'no_such_metrics'"


def beyond_context(tmp_path, data):  # the demo model reads 256 positions
    data["max_length"] = 100000
    return (r"data\.max_length = 100000 is more than the model's context: .* reads at most 256 "
            r"tokens.*set data\.max_length to at most 256")  # fmt: skip


def folder_as_data_file(tmp_path, data):
    (tmp_path / "saved").mkdir()
    data["train"] = str(tmp_path / "saved")
    return r"data\.train: .*saved' is a folder, not a file.*data\.dataset"


def metric_that_raises(tmp_path, data):
    (tmp_path / "raising_metric.py").write_text(
        "def f1(predictions, references):\n    return {}['f1']\n"
    )
    return (r"objective\.metric raising_metric:f1: the function raised KeyError: 'f1' "
            r"\(raising_metric\.py, line 2\)")  # fmt: skip


def metric_module_broken(tmp_path, data):
    (tmp_path / "broken_metric.py").write_text("import no_such_package_here\n")
    return (r"objective\.metric: importing 'broken_metric' failed: ModuleNotFoundError: "
            r"No module named 'no_such_package_here' \(broken_metric\.py, line 1\)")  # fmt: skip


MISTAKES = [
    chat_named_as_fields,
    chat_without_template,
    template_names_missing_field,
    template_with_json_braces,
    missing_local_model,
    overlong,
    metric_module_missing,
    beyond_context,
    folder_as_data_file,
    metric_that_raises,
    metric_module_broken,
]
METRICS = {metric_module_missing: "no_such_metrics:f1", metric_that_raises: "raising_metric:f1",
           metric_module_broken: "broken_metric:f1"}  # fmt: skip


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_data_mistake_is_one_paragraph_and_exit_2(mistake, command, tmp_path, demo_path,
                                                     capsys) -> None:  # fmt: skip
    raw = tiny_config(tmp_path)
    message = mistake(tmp_path, raw["data"])
    if mistake is missing_local_model:
        raw["model"]["path"] = "models/llama-3-8b"
    if mistake in METRICS:
        raw["objective"].update(metric=METRICS[mistake], direction="maximize")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main([command, str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("hptune: error: ")
    assert len(err.strip().splitlines()) <= 3, err  # one paragraph (config errors: a header)
    import re

    assert re.search(message, err.replace("\n", " ")), err
    assert not (tmp_path / "out").exists()  # nothing written
