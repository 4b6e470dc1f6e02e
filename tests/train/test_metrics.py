"""Text metrics: the built-in ones on short answers, a user's function, and the BLEU guardrail."""

import json

import pytest

from hptune.exceptions import ConfigError
from hptune.train.metrics import (
    bleu_score,
    chrf_score,
    exact_match_score,
    resolve_metric,
    rouge_l_score,
    score_answers,
)

SHORT = ["42", "17.5", "yes"]


def test_on_short_answers_bleu_is_zero_where_exact_match_and_chrf_see_the_difference() -> None:
    wrong = ["41", "17", "no"]
    assert bleu_score(SHORT, SHORT) == 0.0  # exactly right, and still 0
    assert bleu_score(["the answer is 42"], ["42"]) > 0  # wrong form, yet above the right one
    assert exact_match_score(SHORT, SHORT) == 100.0
    assert exact_match_score(wrong, SHORT) == 0.0
    assert exact_match_score(["42", "17", "no"], SHORT) == pytest.approx(100 / 3)
    assert chrf_score(SHORT, SHORT) == 100.0
    assert 0.0 <= chrf_score(wrong, SHORT) < chrf_score(["42", "17.5", "no"], SHORT) < 100.0


def test_exact_match_ignores_case_spacing_and_a_final_period() -> None:
    assert exact_match_score(["  The  answer is 42. "], ["the answer is 42"]) == 100.0
    assert exact_match_score(["42 percent"], ["42"]) == 0.0


def test_rouge_l_is_the_f1_of_the_longest_common_subsequence() -> None:
    # common subsequence "the cat sat": precision 3/3, recall 3/4 -> F1 6/7
    assert rouge_l_score(["The cat sat"], ["the cat sat down"]) == pytest.approx(100 * 6 / 7)
    assert rouge_l_score(["a b c"], ["c b a"]) == pytest.approx(100 / 3)
    assert rouge_l_score(["x"], ["y"]) == 0.0


def test_a_user_metric_is_imported_from_the_configuration_folder(tmp_path) -> None:
    (tmp_path / "my_metrics.py").write_text(
        "def hits(predictions, references):\n"
        "    return sum(p == r for p, r in zip(predictions, references)) / len(references)\n"
        "def broken(predictions, references):\n"
        "    return 'high'\n"
    )
    fn = resolve_metric("my_metrics:hits", str(tmp_path))
    assert score_answers(fn, "my_metrics:hits", ["a", "b"], ["a", "c"]) == 0.5
    with pytest.raises(ConfigError, match=r"my_metrics has no function 'f1'; define f1\("):
        resolve_metric("my_metrics:f1", str(tmp_path))
    with pytest.raises(ConfigError, match=r"cannot import 'nowhere_metrics'.*beside the config"):
        resolve_metric("nowhere_metrics:f1", str(tmp_path))
    broken = resolve_metric("my_metrics:broken", str(tmp_path))
    with pytest.raises(ConfigError, match=r"returned 'high'; it must return one finite number"):
        score_answers(broken, "my_metrics:broken", ["a"], ["a"])


def test_a_callable_metric_from_python_needs_a_direction() -> None:
    from hptune.config import ObjectiveConfig

    def f1(predictions: list[str], references: list[str]) -> float:
        return 1.0

    with pytest.raises(ValueError, match="objective.direction is required"):
        ObjectiveConfig(metric=f1)
    objective = ObjectiveConfig(metric=f1, direction="maximize")
    assert resolve_metric(objective.metric) is f1
    assert objective.metric_name.endswith(
        ":test_a_callable_metric_from_python_needs_a_direction.<locals>.f1"
    )
    with pytest.raises(ValueError, match="bleu is always maximized"):
        ObjectiveConfig(metric="bleu", direction="minimize")


def test_bleu_on_short_references_is_a_guardrail_finding(tmp_path, demo_path) -> None:
    from hptune import guardrails
    from hptune.config import config_from_dict
    from hptune.pipeline import resolve_hparams
    from hptune.train import Runner
    from tests.conftest import tiny_config

    rows = [{"question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(12)]
    (tmp_path / "short.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = tiny_config(tmp_path)
    raw["data"].update(
        train=str(tmp_path / "short.jsonl"), validation=str(tmp_path / "short.jsonl")
    )
    raw["objective"]["metric"] = "bleu"
    raw["guardrails"] = {"ignore": ["high_learning_rate", "two_seeds", "validation_is_training"]}
    config = config_from_dict(raw)
    runner = Runner(config)
    found = guardrails.check(config, resolve_hparams(config, runner.data.n_train)[0], runner.data)
    assert [f.check for f in found] == ["short_bleu_references"]
    assert "exact_match" in found[0].fix and "chrf" in found[0].fix
    raw["objective"]["metric"] = "exact_match"
    config = config_from_dict(raw)
    assert (
        guardrails.check(config, resolve_hparams(config, runner.data.n_train)[0], runner.data) == []
    )


def test_a_metric_may_return_a_numpy_scalar_and_the_metric_may_change_later() -> None:
    import numpy as np

    from hptune.config import ObjectiveConfig

    assert score_answers(lambda p, r: np.float32(0.5), "np", ["a"], ["a"]) == 0.5
    objective = ObjectiveConfig()
    objective.metric = "chrf"  # validated on assignment: the direction follows the metric
    assert objective.goal == "maximize"
    objective.metric = "eval_loss"
    assert objective.goal == "minimize"


def test_rouge_l_is_the_reference_implementation_s_on_word_answers() -> None:
    # hptune's ROUGE-L (a longest common subsequence over lowercased words) against
    # rouge-score, the reference package, F1 without stemming.
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    words = st.lists(st.sampled_from(["the", "margin", "is", "30", "percent", "Profit", "rose"]),
                     min_size=1, max_size=8).map(" ".join)  # fmt: skip

    @settings(max_examples=200, deadline=None)
    @given(words, words)
    def same(hypothesis: str, reference: str) -> None:
        expected = 100 * scorer.score(reference, hypothesis)["rougeL"].fmeasure
        assert rouge_l_score([hypothesis], [reference]) == pytest.approx(expected, abs=1e-9)

    same()
