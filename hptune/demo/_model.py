"""The demo's tiny Llama base model and its tokenizer, trained here from nothing.

The model is saved with ``save_pretrained`` (safetensors) so that hptune loads it back with
``from_pretrained`` exactly like a user's model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hptune._lazy import tokenizers, torch, transformers
from hptune.demo._data import generate_corpus, generate_examples

__all__ = ["build_model", "build_tokenizer"]

SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
}


def build_tokenizer(directory: Path, *, seed: int, vocab_size: int = 512) -> Any:
    """Train a byte-level BPE tokenizer (digits split one by one) and save it to ``directory``."""
    pre_tokenizers = tokenizers.pre_tokenizers
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The tokenizer sees the questions' vocabulary, but not the split that is evaluated.
    texts = list(generate_corpus(4000, seed=seed))
    texts += [r["question"] + " " + r["answer"] for r in generate_examples(2000, seed=seed + 7)]
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    fast.save_pretrained(directory)
    return fast


def build_model(
    directory: Path,
    tokenizer: Any,
    *,
    seed: int,
    hidden_size: int = 128,
    layers: int = 2,
    steps: int = 400,
) -> None:
    """Pre-train a tiny Llama on the generic corpus for ``steps`` steps and save it."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(config)
    sentences = list(generate_corpus(steps * 16, seed=seed + 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    model.train()
    for step in range(steps):
        texts = sentences[step * 16 : (step + 1) * 16]
        batch = tokenizer(
            [tokenizer.bos_token + t + tokenizer.eos_token for t in texts],
            return_tensors="pt",
            padding=True,
        )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        for group in optimizer.param_groups:  # linear decay to zero
            group["lr"] = 3e-3 * (1 - (step + 1) / steps)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
