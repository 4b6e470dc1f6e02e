import json

from hptune.demo._data import QUESTION_KINDS, generate_examples, write_splits


def test_examples_are_deterministic_and_computed() -> None:
    a = generate_examples(50, seed=3)
    assert a == generate_examples(50, seed=3)
    assert a != generate_examples(50, seed=4)
    assert {r["kind"] for r in generate_examples(300, seed=1)} == set(QUESTION_KINDS)
    profit = next(r for r in generate_examples(200, seed=5) if r["kind"] == "profit")
    words = profit["question"].split()
    revenue, cost = (
        int(words[words.index("revenue") + 2]),
        int(words[words.index("costs") + 2].rstrip(".")),
    )
    assert profit["answer"] == f"The profit is {revenue - cost}."


def test_splits_written_as_jsonl(tmp_path) -> None:
    paths = write_splits(tmp_path, seed=1, sizes={"train": 20, "validation": 5, "test": 5})
    rows = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    assert len(rows) == 20 and set(rows[0]) == {"kind", "question", "answer"}


def test_built_demo_loads_through_from_pretrained(demo_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(demo_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(demo_path / "model")
    assert model.config.model_type == "llama"
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 5_000_000
    assert (demo_path / "model" / "model.safetensors").is_file()
    text = "Acme had revenue of 120. The profit is 80."
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
