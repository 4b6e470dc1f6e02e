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


def test_truncation_keeps_lengths_consistent(tokenizer) -> None:
    config = DataConfig(
        dataset=dataset_dict(train=records(2), validation=records(2)),
        prompt_field="q",
        response_field="a",
        max_length=9,
    )
    example = prepare_data(config, tokenizer).train[0]
    assert len(example["input_ids"]) == len(example["labels"]) == 9


def test_missing_field_is_named(tokenizer) -> None:
    config = DataConfig(
        dataset=dataset_dict(train=records(2), validation=records(2)), response_field="answer"
    )
    with pytest.raises(DataError, match=r"no field 'answer', 'question'.*fields present: q, a"):
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
