"""Validation metrics: token-weighted loss, and text metrics on greedily generated answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from hptune._signals import raise_if_interrupted
from hptune.exceptions import ConfigError
from hptune.train._imports import import_function, where_raised

__all__ = [
    "BUILTIN_TEXT_METRICS",
    "bleu_score",
    "bleu_signature",
    "chrf_score",
    "evaluate_loss",
    "exact_match_score",
    "generate_answers",
    "resolve_metric",
    "rouge_l_score",
    "score_answers",
]


def evaluate_loss(model: Any, loader: Any) -> float:
    """Mean loss over all response tokens of the split (not a mean of batch means)."""
    import torch

    model.eval()
    total_loss = 0.0
    total_tokens = 0
    with torch.no_grad():
        for batch in loader:
            raise_if_interrupted()
            loss = model(**batch).loss
            # The model shifts labels by one: the last position predicts nothing.
            n_tokens = int((batch["labels"][:, 1:] != -100).sum())
            total_loss += float(loss) * n_tokens
            total_tokens += n_tokens
    model.train()
    return total_loss / max(total_tokens, 1)


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to tokenized prompts, left-padded so generation continues each prompt."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    # An answer ends at EOS, at a chat template's end of turn (<|im_end|>, <|eot_id|>: special
    # tokens, or in the model's generation_config), or at any other special token.
    stops = {*tokenizer.all_special_ids} - {tokenizer.pad_token_id, tokenizer.unk_token_id}
    stops.add(tokenizer.eos_token_id)  # also when the pad token is the EOS token
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    stops |= set(configured if isinstance(configured, list) else [configured])
    stop_ids = sorted(i for i in stops if i is not None)
    answers: list[str] = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            raise_if_interrupted()
            chunk = prompts[start : start + batch_size]
            width = max(len(p) for p in chunk)
            pad = tokenizer.pad_token_id
            input_ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in chunk])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=stop_ids,
            )
            answers += tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
    model.train()
    return [a.strip() for a in answers]


def bleu_score(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's defaults."""
    from sacrebleu.metrics import BLEU

    return float(BLEU().corpus_score(list(hypotheses), [list(references)]).score)


def chrf_score(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100) with sacrebleu's defaults: character n-grams, fair to short answers."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().corpus_score(list(hypotheses), [list(references)]).score)


def _normalized(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def exact_match_score(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """The share (0-100) of answers equal to their reference, ignoring case, spacing and a
    final period.

    Written here rather than taken from ``evaluate``'s ``exact_match``, which loads its metric
    script from the Hugging Face hub at run time (hptune reaches no network unless allowed).
    """
    pairs = list(zip(hypotheses, references, strict=True))
    return 100.0 * sum(_normalized(h) == _normalized(r) for h, r in pairs) / max(len(pairs), 1)


def rouge_l_score(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 (0-100) over answers, on lowercased word tokens.

    Written here (a longest common subsequence) rather than taken from ``rouge-score``,
    whose dependencies (nltk, absl) would come with it for these few lines.
    """
    import re

    def f1(hypothesis: str, reference: str) -> float:
        hyp, ref = re.findall(r"\w+", hypothesis.lower()), re.findall(r"\w+", reference.lower())
        if not hyp or not ref:
            return float(hyp == ref)
        previous = [0] * (len(ref) + 1)
        for word in hyp:
            row = [0]
            for j, other in enumerate(ref):
                row.append(previous[j] + 1 if word == other else max(previous[j + 1], row[j]))
            previous = row
        common = previous[-1]
        if common == 0:
            return 0.0
        precision, recall = common / len(hyp), common / len(ref)
        return 2 * precision * recall / (precision + recall)

    pairs = list(zip(hypotheses, references, strict=True))
    return 100.0 * sum(f1(h, r) for h, r in pairs) / max(len(pairs), 1)


TextMetric = Callable[[list[str], list[str]], float]

BUILTIN_TEXT_METRICS: dict[str, TextMetric] = {
    "bleu": bleu_score,
    "chrf": chrf_score,
    "exact_match": exact_match_score,
    "rouge_l": rouge_l_score,
}


def resolve_metric(metric: Any, search_dir: str | None = None) -> TextMetric:
    """The function that scores generated answers for ``objective.metric``.

    Args:
        metric: A built-in text metric's name, ``"module:function"``, or a callable.
        search_dir: A folder to import ``module`` from first (the configuration's).

    Returns:
        ``fn(predictions, references) -> float``.

    Raises:
        ConfigError: The module or function cannot be imported, or is not callable.
    """
    if callable(metric):
        return cast(TextMetric, metric)
    if metric in BUILTIN_TEXT_METRICS:
        return BUILTIN_TEXT_METRICS[metric]
    signature = "(predictions: list[str], references: list[str]) -> float"
    fn = import_function(str(metric), search_dir, key="objective.metric", signature=signature)
    return cast(TextMetric, fn)


def score_answers(
    fn: TextMetric, name: str, predictions: list[str], references: list[str]
) -> float:
    """``fn(predictions, references)`` as a finite float.

    Raises:
        ConfigError: The metric raised, or returned something else (a user function's
            mistake): the message is the function's own, with where it raised.
    """
    import math

    try:
        value = fn(list(predictions), list(references))
    except Exception as exc:  # the user's function: any error it raises, told as theirs
        raise ConfigError(
            f"objective.metric {name}: the function raised {type(exc).__name__}: {exc}"
            f"{where_raised(exc)}, called with predictions and references, two lists of "
            f"{len(predictions)} strings; fix the function"
        ) from None
    try:  # a float, an int, a numpy scalar or a one-element tensor
        number = float(value) if not isinstance(value, (bool, str, bytes)) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(
            f"objective.metric {name}: returned {value!r}; it must return one finite number "
            "(e.g. the mean over the answers)"
        )
    return number


def bleu_signature() -> str:
    """sacrebleu's signature of the BLEU settings, recorded with every result."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    bleu.corpus_score(["a"], [["a"]])  # the signature records the reference count once scored
    return str(bleu.get_signature())
