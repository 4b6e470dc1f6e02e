"""``hptune plan --json``: the same plan as the tables, checked against its documented
schema (docs/plan.schema.json)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from rich.console import Console

from hptune.cli._plan import print_plan

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "plan.schema.json").read_text())


def _plan_json(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "hptune", "plan", "--json", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture
def budgeted(demo_path, tmp_path) -> Path:
    raw = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "out")
    raw["training"]["device"] = "a100-80gb"  # planned for a GPU from this CPU
    del raw["phases"]["batch_size"]["memory_limit_gb"]  # the GPU's memory bounds the batch
    raw["budget"] = {"gpu_hours": 0.2, "examples_per_second": 100}
    path = tmp_path / "budgeted.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_plan_json_follows_its_schema_and_says_what_the_tables_say(budgeted) -> None:
    from hptune.plan import make_plan

    plan = _plan_json(budgeted)
    jsonschema.Draft202012Validator(SCHEMA).validate(plan)
    assert plan["target"]["name"] == "a100-80gb" and plan["target"]["dtype"] == "bfloat16"
    assert plan["starting_configuration"]["batch_size"] == {"value": 4, "source": "config"}
    assert plan["budget"]["limit_seed_epochs"] == 72 and plan["budget"]["cuts"]
    # racing's "up to" counted, the budget's limit at most; the fit leaves racing out
    assert plan["seed_epochs"] == min(sum(p["seed_epochs"] for p in plan["phases"]), 72)
    planned = plan["budget"]["planned_seed_epochs"]
    assert planned == sum(p["seed_epochs"] - p["racing"] for p in plan["phases"]) <= 72
    assert plan["budget"]["racing_seed_epochs"] == 72 - planned
    assert plan["throughput"] == {"examples_per_second": 100,
                                  "source": "budget.examples_per_second"}  # fmt: skip
    # above the incoming effective batch 32, up to 8 steps an epoch of 1,000 examples
    assert [r["batch_size"] for r in plan["batch_sizes"]][-2:] == [32, 64]
    same = make_plan(budgeted)  # the Python API gives the same plan
    assert json.loads(json.dumps(same.to_dict())) == plan
    console = Console(file=io.StringIO(), width=300)
    print_plan(console, same, refused=False)  # and the text says what racing may use
    printed = console.file.getvalue()
    assert f"racing, then spare trials: up to {72 - planned} seed-epochs at run time" in printed


def test_the_schema_refuses_what_it_does_not_document(demo_path) -> None:
    plan = _plan_json(ROOT / "examples" / "demo.yaml")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    validator.validate(plan)  # the demo, on this CPU, without a budget
    assert plan["budget"] is None and plan["target"]["kind"] == "cpu"
    assert not validator.is_valid({k: v for k, v in plan.items() if k != "target"})
    assert not validator.is_valid({**plan, "surprise": 1})
    assert not validator.is_valid({**plan, "phases": [{**plan["phases"][0], "trials": "1"}]})


def test_the_plan_shows_each_lora_rank_s_trainable_parameters_and_memory(
    tiny_config_dict,
) -> None:
    from hptune.config import config_from_dict
    from hptune.plan import make_plan

    tiny_config_dict["phases"] = {"run": ["baseline", "lora_rank"],
                                  "lora_rank": {"ranks": [4, 8, 16]}}  # fmt: skip
    plan = make_plan(config_from_dict(tiny_config_dict))
    as_json = json.loads(json.dumps(plan.to_dict()))
    jsonschema.Draft202012Validator(SCHEMA).validate(as_json)
    rows = as_json["lora_ranks"]
    assert [(r["r"], r["lora_alpha"]) for r in rows] == [(4, 8), (8, 16), (16, 32)]
    trainable = [r["trainable_parameters"] for r in rows]
    assert trainable[0] > 0 and trainable[1] == 2 * trainable[0] == trainable[2] / 2
    assert rows[0]["predicted_gb"] <= rows[1]["predicted_gb"] <= rows[2]["predicted_gb"]


def test_the_plan_shows_searched_alphas_and_counts_the_grid(tiny_config_dict) -> None:
    from hptune.config import config_from_dict
    from hptune.plan import make_plan

    tiny_config_dict["phases"] = {"run": ["baseline", "lora_rank"],
                                  "lora_rank": {"ranks": [4, 8], "alphas": [8, 32]}}  # fmt: skip
    plan = make_plan(config_from_dict(tiny_config_dict))
    as_json = json.loads(json.dumps(plan.to_dict()))
    jsonschema.Draft202012Validator(SCHEMA).validate(as_json)
    assert [r["lora_alphas"] for r in as_json["lora_ranks"]] == [[8, 32], [8, 32]]
    [phase] = [p for p in as_json["phases"] if p["phase"] == "lora_rank"]
    assert phase["trials"] == 4 * 3 and "x alphas 8, 32" in phase["what"]
    assert "each at the learning rate x0.5, x1, x2" in phase["what"]


def test_the_plan_says_how_many_seeds_train_together_and_why_not(
    tiny_config_dict, monkeypatch
) -> None:
    import hptune.train.together
    from hptune.config import config_from_dict
    from hptune.plan import make_plan
    from hptune.train.target import memory_check

    # the 50 MB limit below bounds stacks as a GPU's would (on a CPU it bounds the batch only)
    monkeypatch.setattr(hptune.train.together, "stack_check", memory_check)

    def together(**training) -> dict:
        raw = {**tiny_config_dict, "objective": {**tiny_config_dict["objective"], "seeds": 3}}
        raw["training"] = {**raw["training"], **training}
        raw["phases"] = {**raw["phases"], "batch_size": {"memory_limit_gb": 0.05}}
        plan = json.loads(json.dumps(make_plan(config_from_dict(raw)).to_dict()))
        jsonschema.Draft202012Validator(SCHEMA).validate(plan)
        return plan["method"]["seeds_together"]

    off = together(batch_size=4)
    assert (off["setting"], off["together"], off["of"]) == (False, 1, 3)
    hint = "(training.seeds_together: auto would train them together)"
    assert off["described"] == f"seeds: 3, one after the other {hint}"
    three = together(batch_size=4, seeds_together="auto")  # 28.7 MB of a 46 MB stand-in
    assert three["together"] == 3 and three["described"].startswith(
        "seeds: 3 of 3 trained together at the starting batch 4")  # fmt: skip
    two = together(batch_size=8, seeds_together=True)
    assert two["together"] == 2 and "the rest follow" in two["described"]
    blocked = together(batch_size=4, seeds_together="auto", backend="trainer")
    assert blocked["together"] == 1 and blocked["why_not"].startswith("backend trainer")
    but = "(training.seeds_together: auto, but backend trainer"
    assert blocked["described"].startswith(f"seeds: one after the other {but}")


def test_the_plan_shows_the_method_who_chose_it_and_the_disk_of_its_checkpoints(
    tiny_config_dict,
) -> None:
    from hptune.config import config_from_dict
    from hptune.plan import make_plan

    plan = json.loads(json.dumps(make_plan(config_from_dict(tiny_config_dict)).to_dict()))
    jsonschema.Draft202012Validator(SCHEMA).validate(plan)
    method = plan["method"]
    assert (method["type"], method["r"], method["alpha"], method["chosen_by"]) == (
        "lora", 8, 16, "method.type")  # fmt: skip
    assert "r 8, alpha 16" in method["described"] and "target modules all-linear" in method[
        "described"]  # fmt: skip
    trials = sum(p["trials"] for p in plan["phases"])
    kept = method["checkpoints"]
    assert kept["kept_at_most"] == trials * 5 * 2  # every seed racing may add, best and last
    assert kept["per_checkpoint_bytes"] == method["trainable_parameters"] * 4

    tiny_config_dict["method"] = {"type": "full"}
    full = make_plan(config_from_dict(tiny_config_dict)).to_dict()["method"]
    assert full["trainable_parameters"] == full["total_parameters"]
    assert full["checkpoints"]["per_checkpoint_bytes"] == full["total_parameters"] * 4  # fp32

    tiny_config_dict.pop("method")
    tiny_config_dict["training"].update(situation="colab_free", device="t4",
                                        checkpoints=False)  # fmt: skip
    qlora = make_plan(config_from_dict(tiny_config_dict)).to_dict()["method"]
    assert qlora["type"] == "qlora" and qlora["chosen_by"] == "training.situation colab_free"
    assert "4-bit NF4 base" in qlora["described"] and "set method.type" in qlora["described"]
    assert qlora["checkpoints"] is None
