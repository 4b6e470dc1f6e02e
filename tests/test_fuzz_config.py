"""Fuzzed configurations (hypothesis): whatever the YAML holds, `hptune plan` either prints a
plan (exit 0) or a clear one-paragraph error (exit 2); never a traceback, never a crash.

`hptune.cli.main` is called in this process: any exception other than hptune's own errors
escapes it and fails the test, with the configuration that caused it."""

import copy
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hptune.cli import main

FUZZ = settings(max_examples=int(os.environ.get("HPTUNE_FUZZ_EXAMPLES", 40)), deadline=None,
                derandomize="HPTUNE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["lora", "qlora", "full", "eval_loss", "bleu", "cosine", "demo://model",
                     "auto", "1e-4", "[1, 2]", "-1", "0"]),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def base_config(demo_path, tmp_path_factory) -> tuple[dict, Path]:
    """A valid configuration on 24 local records (the plan loads and tokenizes them)."""
    folder = tmp_path_factory.mktemp("fuzz")
    rows = [json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)})
            for i in range(24)]  # fmt: skip
    for split in ("train", "validation"):
        (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    raw = {
        "name": "fuzz",
        "model": {"path": str(demo_path / "model")},
        "method": {"type": "lora", "r": 8},
        "data": {"train": "train.jsonl", "validation": "validation.jsonl",
                 "template": "Question: {question}\nAnswer: ", "max_length": 64},
        "objective": {"seeds": 2},
        "training": {"learning_rate": 1e-3, "batch_size": 4, "epochs": 1},
        "phases": {"learning_rate": {"grid": [1e-4, 1e-3]},
                   "batch_size": {"memory_limit_gb": 0.05}},
        "output_dir": "out",
    }  # fmt: skip
    return raw, folder


def _paths(tree: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested mapping, leaves and inner nodes."""
    if not isinstance(tree, dict):
        return []
    found = []
    for key, value in tree.items():
        found.append((*prefix, key))
        found += _paths(value, (*prefix, key))
    return found


def _plan(folder: Path, text: str, capsys) -> tuple[int, str, str]:
    path = folder / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["plan", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def _check(code: int, out: str, err: str) -> None:
    assert code in (0, 2), (code, err)
    assert "Traceback" not in out + err
    if code == 0:
        assert "phases (" in out and "compute: at most" in out
    else:
        # one paragraph: the problem (one line per invalid key) and the fix, nothing else
        assert err.startswith("hptune: error: ") and "\n\n" not in err.strip(), err


def test_the_unfuzzed_base_configuration_plans(base_config, capsys) -> None:
    raw, folder = base_config
    code, out, err = _plan(folder, yaml.safe_dump(raw), capsys)
    assert code == 0, err
    _check(code, out, err)


@FUZZ
@given(data=st.data())
def test_fuzzed_values_give_a_plan_or_a_clear_error(base_config, capsys, data) -> None:
    raw, folder = base_config
    config = copy.deepcopy(raw)
    paths = _paths(config)
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        node = config
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue  # an earlier change replaced a parent
        if data.draw(st.booleans(), label="delete"):
            node.pop(path[-1], None)
        else:
            node[path[-1]] = data.draw(VALUES, label=".".join(map(str, path)))
    if data.draw(st.booleans(), label="unknown key"):
        config[data.draw(st.text(min_size=1, max_size=8), label="new key")] = 1
    _check(*_plan(folder, yaml.safe_dump(config, allow_unicode=True), capsys))


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text_is_refused_clearly(base_config, capsys, text) -> None:
    _, folder = base_config
    _check(*_plan(folder, text, capsys))


@pytest.mark.parametrize(
    "text",
    [
        "model: !!python/object/apply:os.system ['touch {marker}']\n",
        "a: [1, 2\n",
        "- just\n- a list\n",
        "model: {path: &a [*a]}\n",
        "\ufeffmodel: {}\n",
        "data: {train: \x00}\n",
    ],
)
def test_hostile_yaml_is_refused_clearly(base_config, capsys, text) -> None:
    _, folder = base_config
    marker = folder / "the-tag-ran"
    code, out, err = _plan(folder, text.replace("{marker}", str(marker)), capsys)
    assert code == 2 and not marker.exists()
    _check(code, out, err)
