import pytest

from hptune.config import DataConfig
from hptune.exceptions import DataError
from hptune.train.data import prepare_data


@pytest.fixture(scope="module")
def tokenizer(demo_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_path / "model")


def records(n: int, **extra) -> list[dict]:
    return [{"q": f"What is {i} plus {i}?", "a": f"It is {2 * i}.", **extra} for i in range(n)]


def dataset_dict(**splits):
    import datasets

    return datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})


def test_in_memory_dataset_dict(tokenizer) -> None:
    config = DataConfig(
        dataset=dataset_dict(train=records(6), validation=records(3)),
        prompt_field="q",
        response_field="a",
        max_length=64,
    )
    data = prepare_data(config, tokenizer)
    assert data.n_train == 6 and data.test is None
    assert data.validation_references[1] == "It is 2."
    example = data.train[2]
    answer = [t for t in example["labels"] if t != -100]
    assert tokenizer.decode(answer, skip_special_tokens=True) == "It is 4."
    assert len(example["input_ids"]) == len(example["labels"])
    assert data.fingerprints["train"] != data.fingerprints["validation"]


def test_overlong_examples_are_refused_or_dropped_never_cut(tokenizer) -> None:
    splits = dataset_dict(train=[*records(3), {"q": "word " * 30, "a": "x"}], validation=records(2))
    config = DataConfig(dataset=splits, prompt_field="q", response_field="a", max_length=40)
    with pytest.raises(DataError, match=r"data\.train: 1 of 4 examples are longer than "
                       r"data\.max_length = 40 tokens \(the longest has \d+; the first is the "
                       r"dataset, train record 4\).*data\.drop_long: true"):  # fmt: skip
        prepare_data(config, tokenizer)
    data = prepare_data(config.model_copy(update={"drop_long": True}), tokenizer)
    assert data.n_train == 3 and data.dropped == {"train": 1}
    assert all(len(ids) <= 40 for ids in data.train["input_ids"])
    # what is kept is whole: every answer ends with the end-of-sequence token
    assert all(labels[-1] == tokenizer.eos_token_id for labels in data.train["labels"])


def test_missing_field_is_named(tokenizer) -> None:
    config = DataConfig(
        dataset=dataset_dict(train=records(2), validation=records(2)), response_field="answer"
    )
    with pytest.raises(DataError, match=r"record 1: the record has no field 'question' "
                                        r"\(fields present: q, a"):  # fmt: skip
        prepare_data(config, tokenizer)


def test_empty_validation_split_is_refused(tokenizer) -> None:
    import datasets

    empty = datasets.Dataset.from_dict({"q": [], "a": []})
    config = DataConfig(
        dataset=datasets.DatasetDict(
            {"train": datasets.Dataset.from_list(records(2)), "validation": empty}
        ),
        prompt_field="q",
        response_field="a",
    )
    with pytest.raises(DataError, match="validation split has no examples"):
        prepare_data(config, tokenizer)


def test_empty_file_is_refused(tmp_path, tokenizer) -> None:
    (tmp_path / "train.jsonl").write_text("")
    (tmp_path / "val.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    config = DataConfig(train=str(tmp_path / "train.jsonl"), validation=str(tmp_path / "val.jsonl"))
    with pytest.raises(DataError, match=r"data.train: .* is empty"):
        prepare_data(config, tokenizer)


def _files(tmp_path, train: bytes, validation: bytes = b'{"question": "q", "answer": "a"}\n',
           suffix: str = ".jsonl") -> DataConfig:  # fmt: skip
    (tmp_path / f"train{suffix}").write_bytes(train)
    (tmp_path / f"val{suffix}").write_bytes(validation)
    return DataConfig(train=str(tmp_path / f"train{suffix}"),
                      validation=str(tmp_path / f"val{suffix}"))  # fmt: skip


GOOD = b'{"question": "What is 2 plus 2?", "answer": "4"}\n'


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (GOOD + b"\n" + b'{"question": "caf\xe9", "answer": "x"}\n',
         r"train\.jsonl:3: byte 0xe9 is not UTF-8 text; save the file as UTF-8"),
        (GOOD + b'{"question": "q", "answer": \n',
         r"train\.jsonl:2: not valid JSON \(Expecting value at column 29\)"),
        (GOOD + b'["q", "a"]\n', r"train\.jsonl:2: a JSON list, not an object"),
        (GOOD * 2 + b'{"question": "q"}\n',
         r"train\.jsonl:3: the record has no field 'answer' \(fields present: question;"),
        (GOOD + b'{"question": "q", "answer": null}\n',
         r"train\.jsonl:2: field 'answer' is empty \(null\)"),
        (b"\n\n  \n", r"train\.jsonl: the file holds no records"),
    ],
)  # fmt: skip
def test_a_bad_record_is_named_by_file_and_line(tmp_path, tokenizer, train, message) -> None:
    with pytest.raises(DataError, match=r"^data\.train: .*" + message):
        prepare_data(_files(tmp_path, train), tokenizer)


def test_an_empty_validation_file_names_its_split(tmp_path, tokenizer) -> None:
    with pytest.raises(DataError, match=r"^data\.validation: .*val\.jsonl: the file holds no"):
        prepare_data(_files(tmp_path, GOOD, validation=b"\n"), tokenizer)


def test_csv_records_are_checked_with_their_line(tmp_path, tokenizer) -> None:
    train = b'question,answer\n"What is 1, plus 1?",2\nWhat is 2?,\n'
    validation = b"question,answer\nq,a\n"
    with pytest.raises(DataError, match=r"train\.csv:3: field 'answer' is empty"):
        prepare_data(_files(tmp_path, train, validation, suffix=".csv"), tokenizer)
    good = _files(tmp_path, b'question,answer\n"What is 1, plus 1?",2\n', validation, ".csv")
    assert prepare_data(good, tokenizer).validation_references == ["a"]


def test_a_prompt_that_leaves_no_room_for_the_answer_is_refused(tmp_path, tokenizer) -> None:
    long_prompt = b'{"question": "' + b"word " * 200 + b'", "answer": "4"}\n'
    config = _files(tmp_path, GOOD + b"\n" + long_prompt).model_copy(update={"max_length": 64})
    with pytest.raises(DataError, match=r"data\.train: 1 of 2 examples are longer than "
                                        r"data\.max_length = 64 .*train\.jsonl:3\)"):  # fmt: skip
        prepare_data(config, tokenizer)
    # the same record in memory is named by its position
    splits = dataset_dict(train=records(2), validation=[{"q": "word " * 200, "a": "4"}])
    in_memory = DataConfig(dataset=splits, prompt_field="q", response_field="a", max_length=64)
    with pytest.raises(DataError, match=r"data\.validation: .*the dataset, validation record 1"):
        prepare_data(in_memory, tokenizer)


def test_the_cli_reports_bad_data_without_a_traceback(tmp_path, demo_path, capsys) -> None:
    import yaml

    from hptune.cli import main

    data = _files(tmp_path, GOOD + b'{"question": "q", "answer": \n')
    config = {"model": {"path": str(demo_path / "model")},
              "data": {"train": data.train, "validation": data.validation},
              "output_dir": str(tmp_path / "out")}  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["plan", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:2: not valid JSON" in err and "Traceback" not in err


def test_the_first_n_validation_examples_only(tokenizer) -> None:
    config = DataConfig(
        dataset=dataset_dict(train=records(6), validation=records(10)),
        prompt_field="q",
        response_field="a",
        max_length=64,
    )
    data = prepare_data(config, tokenizer, max_validation_examples=4, eval_samples=2)
    assert len(data.validation) == 4
    assert len(data.validation_references) == 2
    assert set(data.validation_references) <= {f"It is {2 * i}." for i in range(4)}
    assert len(prepare_data(config, tokenizer, max_validation_examples=40).validation) == 10
