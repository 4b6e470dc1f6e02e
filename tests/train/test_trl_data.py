"""TRL's own data path (``data.tokenization: trl``, the default with backend sft): SFTTrainer
gets the raw records and tokenizes, masks and packs them itself; hptune validates by the same
rules, so the tokens it counts and scores are those TRL trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hptune.config import config_from_dict
from hptune.exceptions import DataError
from hptune.hparams import HParams
from hptune.train import make_runner
from hptune.train.user import TrialRun

ROOT = Path(__file__).resolve().parents[2]
HP = HParams(learning_rate=5e-3, batch_size=4, gradient_accumulation_steps=1, epochs=1,
             warmup_ratio=0.0, weight_decay=0.0)  # fmt: skip


def _example(name: str, tmp_path: Path, **training) -> dict:
    raw = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    if name == "chat":
        raw["data"]["chat_template"] = str(ROOT / "examples" / "chat_template.jinja")
    raw["objective"] = {"metric": "eval_loss", "seeds": 1}
    raw["training"].update(max_train_examples=24, checkpoints=False, **training)
    raw["output_dir"] = str(tmp_path / "out")
    return raw


def _prompt_completion(tmp_path: Path, conversational: bool) -> dict:
    # The demo's conversations as TRL prompt-completion records: text, or message lists.
    import json

    raw = _example("chat", tmp_path, backend="sft")
    for split in ("train", "validation"):
        from hptune.demo import ensure_demo

        source = ensure_demo() / raw["data"][split].removeprefix("demo://")
        rows = []
        for line in source.read_text().splitlines():
            messages = json.loads(line)["messages"]
            prompt, completion = messages[:-1], messages[-1:]
            if not conversational:
                prompt = "\n".join(m["content"] for m in prompt) + "\nAnswer: "
                completion = completion[0]["content"]
            rows.append(json.dumps({"prompt": prompt, "completion": completion}))
        (tmp_path / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
        raw["data"][split] = str(tmp_path / f"{split}.jsonl")
    raw["data"].pop("test", None)
    return raw


def _trained_tokens(runner) -> tuple[list, list]:
    trainer = runner.build_trainer(TrialRun(runner, HP, 0))
    data = trainer.train_dataset
    return data["input_ids"], data["labels"]


@pytest.mark.parametrize("name", ["chat", "alpaca", "demo", "text", "conversational"])
def test_hptune_counts_and_validates_the_tokens_sfttrainer_trains_from_the_raw_records(
    demo_path, tmp_path, name
) -> None:
    if name in ("text", "conversational"):  # prompt_completion records
        raw = _prompt_completion(tmp_path, conversational=name == "conversational")
    else:
        raw = _example(name, tmp_path, backend="sft")
    runner = make_runner(config_from_dict(raw))
    pc = "prompt_completion"
    formats = {"text": pc, "conversational": pc, "demo": "template"}
    assert runner.data.format == formats.get(name, name)
    assert runner.data.train_records is not None  # auto: TRL's path with backend sft
    assert set(runner.data.train_records[0]) in ({"messages"}, {"prompt", "completion"})
    ids, labels = _trained_tokens(runner)  # SFTTrainer's own preparation of the raw records
    assert ids == runner.data.train["input_ids"]
    assert labels == runner.data.train["labels"]
    # the demo's template and the text prompts here end with a space, which merges with the
    # answer: TRL leaves it out, and the plan says so (the others end on a token boundary)
    cut = "the end of 24 of 24 training prompts merges" in runner.data.format_description
    assert cut == (name in ("demo", "text")), runner.data.format_description


def test_trl_rules_differ_from_hptune_s_where_stated_and_are_chosen_by_the_key(
    demo_path, tmp_path
) -> None:
    raw = _example("chat", tmp_path, backend="sft")
    trl = make_runner(config_from_dict(raw)).data
    raw["data"]["tokenization"] = "hptune"
    own = make_runner(config_from_dict(raw))
    assert own.data.train_records is None
    assert trl.train["input_ids"] == own.data.train["input_ids"]  # the same rendering
    # hptune trains the line end after each assistant turn; TRL's markers end before it
    trained = [sum(x != -100 for x in row) for row in trl.train["labels"]]
    ours = [sum(x != -100 for x in row) for row in own.data.train["labels"]]
    assert all(o > t for o, t in zip(ours, trained, strict=True))
    # with hptune's rules the SFTTrainer trains hptune's tokens, as before
    assert _trained_tokens(own)[1] == own.data.train["labels"]


def test_the_loop_on_trl_s_rules_trains_as_sfttrainer_on_the_raw_records(
    demo_path, tmp_path
) -> None:
    raw = _example("chat", tmp_path)
    raw["data"]["tokenization"] = "trl"
    hp = HP.replace(epochs=2, batch_size=4, gradient_accumulation_steps=2)
    curves = {}
    for backend in ("accelerate", "sft"):
        raw["training"]["backend"] = backend
        runner = make_runner(config_from_dict(raw))
        curves[backend] = [e.eval_loss for e in runner.train(hp, seed=0).epochs]
    for ours, theirs in zip(curves["accelerate"], curves["sft"], strict=True):
        assert abs(ours - theirs) / ours < 1e-3, curves


def test_a_chat_template_without_generation_markers_is_refused_with_the_way_out(
    demo_path, tmp_path
) -> None:
    raw = _example("chat", tmp_path, backend="sft")
    text = (ROOT / "examples" / "chat_template.jinja").read_text()
    raw["data"]["chat_template"] = text.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    with pytest.raises(DataError, match=r"\{% generation %\}.*data.tokenization: hptune"):
        make_runner(config_from_dict(raw))
    raw["data"]["tokenization"] = "hptune"  # hptune renders every assistant turn itself
    assert make_runner(config_from_dict(raw)).data.format == "chat"
