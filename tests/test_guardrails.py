"""The "never do" list, checked before training: warnings, strict refusals, plan output."""

from pathlib import Path

import pytest

from hptune import guardrails
from hptune.cli import main
from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.pipeline import resolve_hparams, tune
from hptune.train import Runner


def findings_for(raw: dict) -> list[guardrails.Finding]:
    config = config_from_dict(raw)
    runner = Runner(config)
    hp, _ = resolve_hparams(config, runner.data.n_train)
    return guardrails.check(config, hp, runner.data)


def test_the_tiny_config_only_warns_about_its_high_rate_and_two_seeds(tiny_config_dict) -> None:
    # tiny_config trains at 5e-3 (a tiny model's rate), above LoRA's 5e-4 danger level
    found = findings_for(tiny_config_dict)
    assert {f.check for f in found} == {"high_learning_rate", "two_seeds"}
    assert all(f.level == "warning" for f in found)
    tiny_config_dict["guardrails"] = {"ignore": ["high_learning_rate"]}
    assert [f.check for f in findings_for(tiny_config_dict)] == ["two_seeds"]
    tiny_config_dict["objective"]["seeds"] = 3
    assert findings_for(tiny_config_dict) == []


def test_each_never_do_is_found(tiny_config_dict) -> None:
    raw = tiny_config_dict
    raw["guardrails"] = {"ignore": ["high_learning_rate"]}
    raw["training"]["warmup_ratio"] = 0.0
    raw["objective"]["seeds"] = 1
    raw["model"]["trust_remote_code"] = True
    raw["data"]["test"] = raw["data"]["validation"]
    checks = {f.check: f for f in findings_for(raw)}
    assert set(checks) == {"no_warmup", "single_seed", "trust_remote_code",
                           "test_overlaps_validation"}  # fmt: skip
    assert (
        "validation and test splits are the same data" in checks["test_overlaps_validation"].message
    )


def test_validation_equal_to_training_is_found(tiny_config_dict) -> None:
    tiny_config_dict["data"]["validation"] = tiny_config_dict["data"]["train"]
    found = {f.check for f in findings_for(tiny_config_dict)}
    assert "validation_is_training" in found


def test_danger_level_scales_with_the_method(tiny_config_dict) -> None:
    tiny_config_dict["objective"]["seeds"] = 3
    tiny_config_dict["training"]["learning_rate"] = 1e-4
    tiny_config_dict["phases"]["learning_rate"]["grid"] = [1e-5, 5e-5]
    assert findings_for(tiny_config_dict) == []  # 1e-4 is fine for LoRA
    tiny_config_dict["method"] = {"type": "full"}
    found = findings_for(tiny_config_dict)
    # ... not for full fine-tuning, and neither is the grid's 5e-5
    assert [f.check for f in found] == ["high_learning_rate", "high_learning_rate"]
    assert "training.learning_rate has 0.0001, at or above 5e-05" in found[0].message
    assert "phases.learning_rate.grid has 5e-05," in found[1].message


def test_strict_refuses_before_anything_is_written(tiny_config_dict, tmp_path) -> None:
    from pathlib import Path

    tiny_config_dict["data"]["test"] = tiny_config_dict["data"]["validation"]
    tiny_config_dict["guardrails"] = {"strict": True, "ignore": ["high_learning_rate"]}
    config = config_from_dict(tiny_config_dict)
    with pytest.raises(ConfigError, match="test_overlaps_validation: the validation and test"):
        tune(config)
    assert not Path(config.output_dir, "hptune.db").exists()


def test_warnings_are_shown_and_the_run_goes_on(tiny_config_dict) -> None:
    tiny_config_dict["phases"]["run"] = ["baseline"]
    events: list[dict] = []
    result = tune(config_from_dict(tiny_config_dict), progress=events.append)
    shown = [e["finding"].check for e in events if e.get("event") == "guardrail"]
    assert shown == ["high_learning_rate", "two_seeds"]
    assert [f.check for f in result.guardrails] == ["high_learning_rate", "two_seeds"]


def test_plan_prints_budget_presets_and_findings(tiny_config_dict, tmp_path, capsys) -> None:
    import yaml

    tiny_config_dict["phases"] = {"epochs": {"range": [1, 3], "extend_edges": 0},
                                  "learning_rate": {"extend_edges": 0},
                                  "regularization": {"n_trials": 4}}  # fmt: skip
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict))
    assert main(["plan", str(path), "--examples-per-second", "100"]) == 0
    out = capsys.readouterr().out
    # 2 seeds x 1 epoch: baseline 2, grid 4 x 2 = 8, batch 3 x 2 = 6, epochs (1+2+3) x 2 = 12
    # less the incoming count read back (1 x 2) = 10, regularization 4 x 2 x 3 = 24 less the
    # incoming candidate read back (2 x 3) = 18: 44 seed-epochs; racing (max_seeds 5: 3 more
    # seeds for the best and up to 3 contenders, at the phase's longest run): grid 4 x 3 x 1
    # = 12, batch 3 x 3 x 1 = 9, epochs 3 x 3 x 3 = 27, regularization 4 x 3 x 3 = 36: 84
    # more, 128 seed-epochs of 96 examples
    assert "at most 128 seed-epochs = 12,288 training examples" in out
    assert "racing up to 5 seeds" in out
    assert "high_learning_rate" in out
    assert "table: warmup 5-10% of steps" in out
    assert not (tmp_path / "out" / "hptune.db").exists()  # planning writes nothing


def test_plan_exits_2_where_run_would_refuse(tiny_config_dict, tmp_path, capsys) -> None:
    import json

    import yaml

    tiny_config_dict["guardrails"] = {"strict": True}  # high_learning_rate, two_seeds: errors
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict))
    assert main(["plan", str(path)]) == 2
    out = capsys.readouterr().out
    assert "error high_learning_rate" in out and "hptune run refuses this configuration" in out
    assert main(["plan", "--json", str(path)]) == 2
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert {f["level"] for f in findings} == {"error"}
    with pytest.raises(ConfigError, match="guardrails refused the configuration"):
        tune(config_from_dict(tiny_config_dict))  # the run refuses the same configuration
    tiny_config_dict["guardrails"] = {"strict": True, "ignore": ["high_learning_rate", "two_seeds"]}
    path.write_text(yaml.safe_dump(tiny_config_dict))
    assert main(["plan", str(path)]) == 0


def test_every_check_can_be_ignored_by_name() -> None:
    import typing

    from hptune.config import GuardrailsConfig

    (names,) = typing.get_args(GuardrailsConfig.model_fields["ignore"].annotation)
    assert typing.get_args(names) == guardrails.CHECKS


def test_the_default_grids_never_trip_the_guardrail_for_any_method(tiny_config_dict) -> None:
    from hptune.guardrails import DANGER_LEARNING_RATE
    from hptune.presets import LEARNING_RATE_BY_METHOD

    for method in ("lora", "full"):  # qlora needs a GPU: its grid is checked below
        raw = {**tiny_config_dict, "method": {"type": method, "target_modules": "all-linear"}}
        raw.pop("phases", None)  # the defaults: the method's grid
        raw["training"] = {**raw["training"], "learning_rate": LEARNING_RATE_BY_METHOD[method]}
        raw["objective"] = {**raw["objective"], "seeds": 3}
        raw["guardrails"] = {"strict": True}
        assert findings_for(raw) == [], method
    for method, danger in DANGER_LEARNING_RATE.items():
        raw = {k: v for k, v in tiny_config_dict.items() if k != "phases"}
        config = config_from_dict({**raw, "method": {"type": method}})
        grid = config.phases.learning_rate.grid
        assert max(grid) < danger and min(grid) < LEARNING_RATE_BY_METHOD[method] < max(grid)


ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted([*(ROOT / "examples").glob("*.yaml"), *(ROOT / "docs/examples").glob("*.yaml")])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_plans_under_strict_guardrails_but_what_it_ignores_on_purpose(
    path, demo_path, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("HPTUNE_STORAGE", f"sqlite:///{tmp_path / 'workers.db'}")
    from hptune.config import load_config
    from hptune.plan import make_plan

    config = load_config(path, check_paths=False)  # make_plan checks them, after the GGUF
    gguf = config.model.gguf_file
    if gguf is not None and not (Path(config.model.path).expanduser() / gguf).is_file():
        # a model fetched by a script (scripts/get_smollm2.sh): a tiny GGUF of the same name
        from tests.train.gguf_tiny import write_tiny_gguf

        write_tiny_gguf(tmp_path / gguf)
        config.model.path = str(tmp_path)
        config.data.max_length = 512  # its byte-level vocabulary of few merges: more tokens
    config.guardrails.strict = True
    ignored = set(config.guardrails.ignore)
    # the tiny demo model's rates x100, and 2 seeds in the quick examples, each said so
    assert ignored <= {"high_learning_rate", "two_seeds"}
    plan = make_plan(config)
    assert [f for f in plan.guardrails if f.level == "error"] == [], path
