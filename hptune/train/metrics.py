"""Validation metrics: token-weighted loss and BLEU from greedy generation (sacrebleu)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hptune._signals import raise_if_interrupted

__all__ = ["bleu_score", "bleu_signature", "evaluate_loss", "generate_answers"]


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
                eos_token_id=tokenizer.eos_token_id,
            )
            answers += tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
    model.train()
    return [a.strip() for a in answers]


def bleu_score(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's defaults."""
    from sacrebleu.metrics import BLEU

    return float(BLEU().corpus_score(list(hypotheses), [list(references)]).score)


def bleu_signature() -> str:
    """sacrebleu's signature of the BLEU settings, recorded with every result."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU()
    bleu.corpus_score(["a"], [["a"]])  # the signature records the reference count once scored
    return str(bleu.get_signature())
