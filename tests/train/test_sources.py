"""Where records come from: files of every kind, a held-out fraction, split names, a
save_to_disk folder, and a hub dataset read from the local cache with no network."""

import glob
import json
import os
import shutil

import pytest

from hptune.config import DataConfig
from hptune.exceptions import DataError
from hptune.train.data import prepare_data

ROWS = [{"question": f"What is {i} plus {i}?", "answer": f"It is {2 * i}."} for i in range(20)]


@pytest.fixture(scope="module")
def tokenizer(demo_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_path / "model")


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_every_file_kind_gives_the_same_examples(tmp_path, tokenizer) -> None:
    import datasets

    _write(tmp_path / "t.jsonl", ROWS)
    (tmp_path / "t.json").write_text(json.dumps(ROWS))
    (tmp_path / "t.csv").write_text(
        "question,answer\n" + "".join(f'"{r["question"]}",{r["answer"]}\n' for r in ROWS)
    )
    datasets.Dataset.from_list(ROWS).to_parquet(str(tmp_path / "t.parquet"))
    ids = []
    for suffix in ("jsonl", "json", "csv", "parquet"):
        path = str(tmp_path / f"t.{suffix}")
        ids.append(
            prepare_data(DataConfig(train=path, validation=path), tokenizer).train["input_ids"]
        )
    assert ids[0] == ids[1] == ids[2] == ids[3]


def test_a_csv_number_stays_the_text_written(tmp_path, tokenizer) -> None:
    (tmp_path / "t.csv").write_text("question,answer\nWhat is 1 plus 1?,02\n")
    path = str(tmp_path / "t.csv")
    data = prepare_data(DataConfig(train=path, validation=path), tokenizer)
    assert data.validation_references == ["02"]  # not 2: a CSV cell is text


def test_validation_fraction_holds_out_a_seeded_deterministic_share(tmp_path, tokenizer) -> None:
    path = _write(tmp_path / "all.jsonl", ROWS)
    config = DataConfig(train=path, validation_fraction=0.25)
    first, again = (prepare_data(config, tokenizer) for _ in range(2))
    assert (first.n_train, first.n_validation) == (15, 5)
    assert first.validation_references == again.validation_references
    assert first.overlaps["train/validation"] == 0
    other = prepare_data(config.model_copy(update={"split_seed": 1}), tokenizer)
    assert other.validation_references != first.validation_references


def test_a_dataset_dict_with_a_dev_split_or_named_splits(tokenizer) -> None:
    import datasets

    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(ROWS[:15]),
            "dev": datasets.Dataset.from_list(ROWS[15:]),
        }
    )
    assert prepare_data(DataConfig(dataset=splits), tokenizer).n_validation == 5
    renamed = datasets.DatasetDict({"fit": splits["train"], "holdout": splits["dev"]})
    with pytest.raises(ValueError, match=r"no train split \(splits: fit, holdout\).*split_names"):
        DataConfig(dataset=renamed)
    named = DataConfig(dataset=renamed, split_names={"train": "fit", "validation": "holdout"})
    assert prepare_data(named, tokenizer).n_train == 15


def test_a_save_to_disk_folder(tmp_path, tokenizer) -> None:
    import datasets

    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(ROWS[:15]),
        "validation": datasets.Dataset.from_list(ROWS[15:]),
    }).save_to_disk(str(tmp_path / "saved"))  # fmt: skip
    data = prepare_data(DataConfig(dataset=str(tmp_path / "saved")), tokenizer)
    assert (data.n_train, data.n_validation) == (15, 5)


def test_a_hub_dataset_is_read_from_the_local_cache_offline(
    tmp_path, tokenizer, monkeypatch
) -> None:
    """The datasets cache as a hub download leaves it (``<org>___<name>/<config>/<version>/
    <hash>``), with HF_DATASETS_OFFLINE=1 (set for every test): loaded, no network."""
    import datasets

    assert datasets.config.HF_HUB_OFFLINE
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    files = {"train": _write(tmp_path / "tr.jsonl", ROWS[:15]),
             "validation": _write(tmp_path / "va.jsonl", ROWS[15:])}  # fmt: skip
    builder = datasets.load_dataset_builder("json", data_files=files, cache_dir=str(tmp_path / "b"))
    builder.download_and_prepare()
    target = tmp_path / "cache" / "acme___finqa" / "default" / "0.0.0" / "0123456789abcdef"
    shutil.copytree(builder.cache_dir, target)
    for arrow in glob.glob(str(target / "json-*")):
        os.rename(arrow, arrow.replace("/json-", "/finqa-"))
    data = prepare_data(DataConfig(dataset="acme/finqa"), tokenizer)
    assert (data.n_train, data.n_validation) == (15, 5)
    with pytest.raises(DataError, match=r"cannot load 'acme/missing'.*local Hugging Face cache"):
        prepare_data(DataConfig(dataset="acme/missing"), tokenizer)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"train": "t.jsonl"}, r"data\.validation_fraction"),
        ({"train": "t.jsonl", "validation": "v.jsonl", "validation_fraction": 0.1}, "keep one"),
        ({"dataset": "acme/finqa", "train": "t.jsonl"}, "not both"),
    ],
)
def test_split_settings_that_contradict_are_refused(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        DataConfig(**settings)


def test_json_documents_and_lines_are_told_apart(tmp_path, tokenizer) -> None:
    pretty = json.dumps(ROWS, indent=2)
    (tmp_path / "pretty.json").write_text(pretty)
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": ROWS}, indent=2))
    (tmp_path / "one.json").write_text(json.dumps(ROWS[0], indent=2))
    # JSON strings may hold U+2028 (a line separator to str.splitlines) unescaped
    (tmp_path / "sep.jsonl").write_text(json.dumps({"question": "a\u2028b", "answer": "c"},
                                                   ensure_ascii=False) + "\n")  # fmt: skip
    sizes = {name: prepare_data(DataConfig(train=str(tmp_path / name),
                                           validation=str(tmp_path / name)), tokenizer).n_train
             for name in ("pretty.json", "wrapped.json", "one.json", "sep.jsonl")}  # fmt: skip
    assert sizes == {"pretty.json": 20, "wrapped.json": 20, "one.json": 1, "sep.jsonl": 1}


def test_a_csv_with_a_byte_order_mark(tmp_path, tokenizer) -> None:
    (tmp_path / "t.csv").write_bytes("question,answer\nq,a\n".encode("utf-8-sig"))
    path = str(tmp_path / "t.csv")
    assert prepare_data(DataConfig(train=path, validation=path), tokenizer).n_train == 1


def test_a_saved_single_split_and_a_fraction_beside_a_validation_split(tmp_path, tokenizer) -> None:
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "one"))
    with pytest.raises(DataError, match=r"holds one split, not a DatasetDict"):
        prepare_data(DataConfig(dataset=str(tmp_path / "one")), tokenizer)
    both = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:15]),
                                 "validation": datasets.Dataset.from_list(ROWS[15:])})  # fmt: skip
    with pytest.raises(DataError, match=r"already a validation split; remove data\.validation_fr"):
        prepare_data(DataConfig(dataset=both, validation_fraction=0.2), tokenizer)


def test_a_json_file_holding_one_chat_record_is_one_record() -> None:
    from hptune.train.sources import _json_array

    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert _json_array(json.dumps(chat), "one.json") == [(" record 1", chat)]
    wrapped = {"data": [{"question": "q", "answer": "a"}] * 2}  # an export's wrapper still opens
    assert len(_json_array(json.dumps(wrapped), "wrapped.json")) == 2
