"""A user's metric, in a small module beside the configuration, decides the learning rate."""

import json

import optuna
import yaml

from hptune import keys
from hptune.cli import main
from tests.conftest import tiny_config

MODULE = '''
import json, os

def characters(predictions, references):
    """The total length of the generated answers (a stand-in for a task's own score)."""
    value = float(sum(len(p) for p in predictions))
    with open(os.environ["METRIC_LOG"], "a") as log:
        log.write(json.dumps(value) + "\\n")
    return value
'''


def _run(tmp_path, direction: str, monkeypatch) -> dict:
    folder = tmp_path / direction
    folder.mkdir()
    (folder / "length_metric.py").write_text(MODULE)
    monkeypatch.setenv("METRIC_LOG", str(folder / "calls.jsonl"))
    raw = tiny_config(folder)
    raw["objective"].update(metric="length_metric:characters", direction=direction, seeds=1,
                            max_seeds=1)  # fmt: skip
    raw["phases"] = {
        "run": ["learning_rate"],
        "learning_rate": {"grid": [1e-4, 5e-2], "extend_edges": 0},
    }
    raw["guardrails"] = {"ignore": ["high_learning_rate", "single_seed"]}
    (folder / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", "-q", str(folder / "c.yaml")]) == 0
    study = optuna.load_study(study_name="tiny.learning_rate",
                              storage=f"sqlite:///{folder}/out/hptune.db")  # fmt: skip
    values = {t.params["learning_rate"]: t.value for t in study.get_trials()}
    calls = [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]
    return {
        "values": values,
        "calls": calls,
        "decision": json.loads(study.user_attrs[keys.DECISION]),
    }


def test_a_user_metric_decides_the_learning_rate_both_ways(
    tmp_path, demo_path, monkeypatch, capsys
):
    up = _run(tmp_path, "maximize", monkeypatch)
    # the values decided on are the function's own return values
    assert set(up["values"].values()) <= set(up["calls"])
    best = max(up["values"], key=up["values"].get)
    assert up["values"][1e-4] != up["values"][5e-2]
    assert up["decision"]["params"]["learning_rate"] == best
    down = _run(tmp_path, "minimize", monkeypatch)
    assert down["values"] == up["values"]  # training is deterministic given the seed
    assert down["decision"]["params"]["learning_rate"] == min(
        down["values"], key=down["values"].get
    )
    assert down["decision"]["params"]["learning_rate"] != best
    # the same study with the direction flipped: refused, its trials are not mixed
    flipped = tmp_path / "maximize" / "c.yaml"
    raw = yaml.safe_load(flipped.read_text())
    raw["objective"]["direction"] = "minimize"
    flipped.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert main(["run", "-q", str(flipped)]) == 2
    assert "another preparation" in capsys.readouterr().err


SHORT_MODULE = '''
import json, os
from hptune.train.metrics import bleu_score, chrf_score

def chrf_and_log_bleu(predictions, references):
    """chrF, deciding; BLEU of the very same answers, logged beside it."""
    value = chrf_score(predictions, references)
    with open(os.environ["METRIC_LOG"], "a") as log:
        log.write(json.dumps([value, bleu_score(predictions, references)]) + "\\n")
    return value
'''


def test_chrf_decides_on_short_answers_where_bleu_sees_nothing(tmp_path, demo_path, monkeypatch):
    from hptune.demo import ensure_demo

    rows = []
    for split in ("train", "validation"):  # the demo's questions, answered with the number only
        lines = (ensure_demo() / "data" / f"{split}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        # "... is 12.5." -> "12.5": one token for sacrebleu's tokenizer too
        short = [{"question": r["question"],
                  "answer": r["answer"].split(" is ")[-1].split()[0].rstrip(".")}
                 for r in records]  # fmt: skip
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short))
        rows += short
    assert max(len(r["answer"].split()) for r in rows) == 1
    (tmp_path / "short_metric.py").write_text(SHORT_MODULE)
    monkeypatch.setenv("METRIC_LOG", str(tmp_path / "calls.jsonl"))
    raw = tiny_config(tmp_path)
    raw["data"].update(train=str(tmp_path / "train.jsonl"),
                       validation=str(tmp_path / "validation.jsonl"))  # fmt: skip
    raw["objective"].update(metric="short_metric:chrf_and_log_bleu", direction="maximize",
                            max_seeds=2, eval_samples=16)  # fmt: skip
    raw["training"]["epochs"] = 2
    raw["phases"] = {
        "run": ["learning_rate"],
        "learning_rate": {"grid": [1e-4, 5e-2], "extend_edges": 0},
    }
    raw["guardrails"] = {"ignore": ["high_learning_rate", "two_seeds"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", "-q", str(tmp_path / "c.yaml")]) == 0
    logged = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    training = logged[1:]  # the first call scores the references themselves (the check)
    assert logged[0] == [100.0, 0.0]  # exactly right, and BLEU still 0
    # BLEU gives exactly right one-token answers 0 and every trained epoch under 1 (sacrebleu's
    # smoothing gives a longer wrong answer a little more than a right one): nothing to decide on
    assert max(bleu for _, bleu in training) < 1.0
    study = optuna.load_study(study_name="tiny.learning_rate",
                              storage=f"sqlite:///{tmp_path}/out/hptune.db")  # fmt: skip
    means = {t.params["learning_rate"]: t.value for t in study.get_trials()}
    assert means[1e-4] != means[5e-2]  # chrF does
    decided = json.loads(study.user_attrs[keys.DECISION])["params"]["learning_rate"]
    assert decided == max(means, key=means.get)


def test_a_chrf_decided_export_trains_an_epoch_under_a_plain_trainer(tmp_path, demo_path) -> None:
    # A plain Trainer measures eval_loss only: keeping the best epoch by a generated-answer
    # metric it never computes failed at its first save. The export keeps by the loss and
    # says how to keep by the metric.
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from hptune.config import load_config
    from hptune.demo import resolve_demo_path
    from hptune.train import make_runner

    raw = tiny_config(tmp_path)
    raw["objective"].update(metric="chrf", seeds=1, max_seeds=1, eval_samples=4)
    raw["training"].update(epochs=1, max_train_examples=32, max_validation_examples=16)
    raw["phases"] = {"run": ["baseline"], "test_evaluation": False}
    raw["guardrails"] = {"ignore": ["high_learning_rate", "single_seed"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", "-q", str(tmp_path / "c.yaml")]) == 0
    assert main(["export", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "export")]) == 0
    exported = json.loads((tmp_path / "export" / "tiny-best.json").read_text())
    assert "chrf" in exported["hptune"]["kept_by"]
    assert exported["hptune"]["written_for"]["transformers"].split(".")[0] == "5"

    data = make_runner(load_config(tmp_path / "c.yaml")).data
    model_dir = resolve_demo_path("demo://model")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(**exported["lora_config"]))  # fmt: skip
    args = TrainingArguments(output_dir=str(tmp_path / "plain"), report_to=[],
                             **{**exported["training_args"], "num_train_epochs": 1})  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data.train,
                      eval_dataset=data.validation, processing_class=tokenizer,
                      data_collator=DataCollatorForSeq2Seq(tokenizer))  # fmt: skip
    trainer.train()  # evaluates and saves after the epoch, keeps the best
    assert trainer.state.best_metric is not None
