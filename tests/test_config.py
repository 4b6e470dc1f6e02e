from pathlib import Path

import pytest
import yaml

from hptune.config import config_from_dict, load_config
from hptune.exceptions import ConfigError


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_demo_example_loads(demo_path: Path) -> None:
    config = load_config(Path(__file__).parent.parent / "examples" / "demo.yaml")
    assert config.name == "demo"
    assert config.method.type == "lora"
    assert config.objective.seed_list == [0, 1, 2]
    assert config.objective.goal == "minimize"
    assert config.phases.learning_rate.grid == [1e-3, 5e-3, 1e-2, 5e-2]
    assert config.storage_url.endswith("hptune-output/demo/hptune.db")


def test_unknown_key_names_key_and_suggestion(tiny_config_dict: dict) -> None:
    tiny_config_dict["training"]["learning_rat"] = 1e-4
    with pytest.raises(ConfigError) as info:
        config_from_dict(tiny_config_dict)
    message = str(info.value)
    assert "training.learning_rat: unknown key" in message
    assert "did you mean 'learning_rate'" in message


def test_negative_learning_rate_refused(tiny_config_dict: dict) -> None:
    tiny_config_dict["training"]["learning_rate"] = -1e-4
    with pytest.raises(ConfigError, match=r"training\.learning_rate: .*greater than 0"):
        config_from_dict(tiny_config_dict)


def test_wrong_type_refused(tiny_config_dict: dict) -> None:
    tiny_config_dict["objective"]["seeds"] = "three"
    with pytest.raises(ConfigError, match="objective.seeds"):
        config_from_dict(tiny_config_dict)


@pytest.mark.parametrize(
    ("section", "key", "value", "fragment"),
    [
        ("objective", "metric", "accuracy", "objective.metric"),
        ("objective", "seeds", 0, "at least one seed"),
        ("objective", "seeds", [1, 1], "without repeats"),
        ("method", "type", "prefix", "method.type"),
        ("method", "dropout", 1.5, "method.dropout"),
        ("data", "template", "no fields", "must name record fields"),
        ("data", "max_length", 2, "data.max_length"),
    ],
)
def test_impossible_values_refused(
    tiny_config_dict: dict, section: str, key: str, value: object, fragment: str
) -> None:
    tiny_config_dict[section][key] = value
    with pytest.raises(ConfigError, match=fragment):
        config_from_dict(tiny_config_dict)


def test_grid_is_checked_and_sorted(tiny_config_dict: dict) -> None:
    tiny_config_dict["phases"]["learning_rate"]["grid"] = [5e-4, 1e-5]
    assert config_from_dict(tiny_config_dict).phases.learning_rate.grid == [1e-5, 5e-4]
    tiny_config_dict["phases"]["learning_rate"]["grid"] = [1e-4, 2.0]
    with pytest.raises(ConfigError, match="between 0 and 1"):
        config_from_dict(tiny_config_dict)


def test_phase_order_is_the_methods(tiny_config_dict: dict) -> None:
    tiny_config_dict["phases"]["run"] = ["learning_rate", "baseline"]
    assert config_from_dict(tiny_config_dict).phases.run == ["baseline", "learning_rate"]
    tiny_config_dict["phases"]["run"] = ["regularization", "epochs", "batch_size"]
    assert config_from_dict(tiny_config_dict).phases.run == [
        "batch_size",
        "epochs",
        "regularization",
    ]
    tiny_config_dict["phases"]["run"] = ["warmup"]
    with pytest.raises(ConfigError, match="phases.run"):
        config_from_dict(tiny_config_dict)


def test_missing_validation_split_refused(tiny_config_dict: dict) -> None:
    del tiny_config_dict["data"]["validation"]
    with pytest.raises(ConfigError, match="data.validation"):
        config_from_dict(tiny_config_dict)


def test_missing_required_section(tiny_config_dict: dict) -> None:
    del tiny_config_dict["model"]
    with pytest.raises(ConfigError, match="model: required key is missing"):
        config_from_dict(tiny_config_dict)


def test_method_shorthand_and_situation(tiny_config_dict: dict) -> None:
    tiny_config_dict["method"] = "full"
    assert config_from_dict(tiny_config_dict).method.type == "full"
    del tiny_config_dict["method"]
    tiny_config_dict["training"]["situation"] = "colab_free"
    assert config_from_dict(tiny_config_dict).method.type == "qlora"


def test_trust_remote_code_off_by_default(tiny_config_dict: dict) -> None:
    assert config_from_dict(tiny_config_dict).model.trust_remote_code is False


def test_missing_data_file_refused(tmp_path: Path, tiny_config_dict: dict) -> None:
    tiny_config_dict["data"]["train"] = "nowhere/train.jsonl"
    with pytest.raises(
        ConfigError, match=r"data.train: file .*nowhere/train.jsonl.* does not exist"
    ):
        load_config(write(tmp_path, tiny_config_dict))


def test_missing_model_path_refused(tmp_path: Path, tiny_config_dict: dict) -> None:
    tiny_config_dict["model"]["path"] = "./models/llama-missing"
    with pytest.raises(ConfigError, match="model.path: .* does not exist"):
        load_config(write(tmp_path, tiny_config_dict))


def test_a_missing_folder_whose_parent_exists_is_not_a_hub_id(
    tmp_path: Path, tiny_config_dict: dict
) -> None:
    """'models/llama-3-8b' reads like 'org/name'; with a models/ folder beside the file it is
    a local path, refused at once instead of a minute of hub retries."""
    (tmp_path / "models").mkdir()
    tiny_config_dict["model"]["path"] = "models/llama-3-8b"
    with pytest.raises(ConfigError, match=r"model\.path: .*models/llama-3-8b' does not exist"):
        load_config(write(tmp_path, tiny_config_dict))


def test_hub_id_is_not_a_missing_path(tmp_path: Path, tiny_config_dict: dict) -> None:
    tiny_config_dict["model"]["path"] = "meta-llama/Llama-2-7b-hf"
    assert load_config(write(tmp_path, tiny_config_dict)).model.path == "meta-llama/Llama-2-7b-hf"


def test_relative_paths_follow_the_config_file(tmp_path: Path, tiny_config_dict: dict) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    tiny_config_dict["data"]["train"] = "data/train.jsonl"
    config = load_config(write(tmp_path, tiny_config_dict))
    assert config.data.train == str(tmp_path / "data" / "train.jsonl")


def test_malformed_yaml_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model:\n  path: [unclosed\n"))


def test_non_mapping_yaml_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model: !!python/object/apply:os.system ['true']\n"))


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/hptune.yaml")


def test_storage_password_is_masked(tiny_config_dict: dict) -> None:
    from hptune.config import redact_url

    tiny_config_dict["storage"] = "postgresql://tuner:s3cret@127.0.0.1:5432/hp"
    config = config_from_dict(tiny_config_dict)
    assert "s3cret" not in config.storage_display
    assert config.storage_display == "postgresql://tuner:***@127.0.0.1:5432/hp"
    assert "pw" not in redact_url("postgresql://127.0.0.1/hp?user=a&password=pw&x=1")


def test_storage_reads_environment_variables(tiny_config_dict: dict, monkeypatch) -> None:
    monkeypatch.setenv("HPTUNE_TEST_DB", "postgresql://tuner:s3cret@127.0.0.1:5432/hp")
    tiny_config_dict["storage"] = "${HPTUNE_TEST_DB}"
    config = config_from_dict(tiny_config_dict)
    assert config.storage_url == "postgresql://tuner:s3cret@127.0.0.1:5432/hp"
    assert config.storage_display == "postgresql://tuner:***@127.0.0.1:5432/hp"

    monkeypatch.setenv("HPTUNE_TEST_PW", "s3cret")
    tiny_config_dict["storage"] = "postgresql://tuner:${HPTUNE_TEST_PW}@127.0.0.1/hp"
    assert "s3cret@" in config_from_dict(tiny_config_dict).storage_url


def test_an_unset_storage_variable_is_a_clear_error(tiny_config_dict: dict, monkeypatch) -> None:
    monkeypatch.delenv("HPTUNE_UNSET_DB", raising=False)
    tiny_config_dict["storage"] = "${HPTUNE_UNSET_DB}"
    with pytest.raises(ConfigError, match=r"storage.*HPTUNE_UNSET_DB is not set; export it"):
        config_from_dict(tiny_config_dict)


def test_with_changes_copies_validates_and_leaves_the_original(tiny_config_dict: dict) -> None:
    import pydantic

    config = config_from_dict(tiny_config_dict)
    changed = config.with_changes(
        {"objective.seeds": [0], "phases.learning_rate.grid": [1e-3, 2e-3]}
    )
    assert changed.objective.seed_list == [0] and changed.phases.learning_rate.grid == [1e-3, 2e-3]
    assert config.objective.seed_list == [0, 1]  # the original is not changed
    assert config.phases.learning_rate.grid == [1e-4, 5e-3]
    assert changed.data is config.data  # sections not changed are shared, not copied
    with pytest.raises(pydantic.ValidationError):
        config.with_changes({"objective.max_seeds": 0})  # validated like the YAML
    assert config.objective.max_seeds == 5


def test_a_live_trial_has_a_grace_of_tens_of_seconds_and_several_beats(
    tiny_config_dict: dict,
) -> None:
    # a slow epoch or save can hold a beat back for seconds: never stale within 60 s by default
    assert config_from_dict(tiny_config_dict).stale_after == 80  # 4 x the default 20 s
    assert config_from_dict({**tiny_config_dict, "heartbeat_seconds": 2}).stale_after == 60
    chosen = {**tiny_config_dict, "heartbeat_seconds": 2, "stale_seconds": 5}
    assert config_from_dict(chosen).stale_after == 5
    with pytest.raises(ConfigError, match="stale_seconds 3 is less than two heartbeats"):
        config_from_dict({**tiny_config_dict, "heartbeat_seconds": 2, "stale_seconds": 3})


def test_trainer_trl_and_peft_names_that_mean_the_same_are_read_as_hptune_keys(
    tiny_config_dict: dict,
) -> None:
    raw = tiny_config_dict
    raw["training"]["num_train_epochs"] = raw["training"].pop("epochs")
    raw["training"]["per_device_train_batch_size"] = raw["training"].pop("batch_size")
    raw["training"]["lr_scheduler_type"] = "cosine"
    raw["method"].update(lora_r=16, lora_alpha=32, lora_dropout=0.1)
    raw["data"]["max_seq_length"] = raw["data"].pop("max_length")
    config = config_from_dict(raw)
    assert (config.training.epochs, config.training.batch_size) == (1, 16)
    assert config.training.scheduler == "cosine" and config.data.max_length == 96
    assert (config.method.r, config.method.alpha, config.method.dropout) == (16, 32, 0.1)
    raw["training"]["epochs"] = 2  # both names of one key
    with pytest.raises(ConfigError, match="training.num_train_epochs: means epochs, which is "
                       "given too; keep one"):  # fmt: skip
        config_from_dict(raw)


@pytest.mark.parametrize(
    ("section", "key", "names"),
    [
        ("training", "bf16", "model.dtype"),
        ("training", "seed", "objective.seeds"),
        ("training", "warmup_steps", "training.warmup_ratio"),
        ("training", "max_steps", "training.epochs"),
        ("training", "save_strategy", "training.checkpoints"),
        ("method", "lora_target_modules", "method.target_modules"),
        ("model", "model_name_or_path", "model.path"),
    ],
)
def test_trainer_names_without_an_hptune_twin_are_refused_with_the_key_to_use(
    tiny_config_dict: dict, section: str, key: str, names: str
) -> None:
    tiny_config_dict[section][key] = 1
    with pytest.raises(ConfigError, match=rf"{section}\.{key}: not an hptune key; .*{names}"):
        config_from_dict(tiny_config_dict)


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("rougeL", "rouge_l"),
        ("ROUGE-L", "rouge_l"),
        ("chrF", "chrf"),
        ("sacrebleu", "bleu"),
        ("exactmatch", "exact_match"),
        ("loss", "eval_loss"),
    ],
)
def test_a_metric_name_from_another_library_gets_did_you_mean(
    tiny_config_dict: dict, given: str, meant: str
) -> None:
    tiny_config_dict["objective"]["metric"] = given
    with pytest.raises(ConfigError, match=f"did you mean '{meant}'"):
        config_from_dict(tiny_config_dict)


def test_a_configuration_built_in_python_is_refused_as_from_yaml() -> None:
    import pydantic

    from hptune import ConfigError, TuneConfig

    with pytest.raises(ConfigError, match=r"training\.num_epochs: unknown key; did you mean "
                                          r"'epochs'\?") as caught:  # fmt: skip
        TuneConfig(model={"path": "demo://model"},
                   data={"train": "a.jsonl", "validation": "v.jsonl"},
                   training={"num_epochs": 3})  # fmt: skip
    assert not isinstance(caught.value, pydantic.ValidationError)
    assert str(caught.value).count("\n") == 1  # one line per problem, one problem
