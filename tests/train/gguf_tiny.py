"""A tiny GGUF checkpoint written with the gguf package's writer, as llama.cpp's converter
writes a real one: a llama architecture, a byte-level BPE tokenizer (GPT-2 style, the one
SmolLM2 ships) with its merges, special tokens and a ChatML chat template. Small enough to
load, train and export in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The chat template stored in the file (SmolLM2's ChatML form).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "Ġ a", "h e", "Ġt he", "i n"]


def write_tiny_gguf(path: Path, *, architecture: str = "llama", hidden: int = 16,
                    layers: int = 2, context: int = 512, seed: int = 0,
                    tied: bool = False) -> Path:  # fmt: skip
    """Write the checkpoint to ``path`` (a ``.gguf`` file); returns ``path``. ``tied``: no
    output matrix, the embeddings serve as one (as in SmolLM2's file)."""
    import gguf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    merged = ["".join(m.split()) for m in MERGES]
    tokens = SPECIALS + list(bytes_to_unicode().values()) + merged
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny llama")
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(2 * hidden)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    normal = len(tokens) - len(SPECIALS)
    writer.add_token_types([gguf.TokenType.CONTROL] * len(SPECIALS)
                           + [gguf.TokenType.NORMAL] * normal)  # fmt: skip
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_chat_template(CHAT_TEMPLATE)
    rng = np.random.default_rng(seed)

    def add(name: str, *shape: int, ones: bool = False) -> None:
        values = np.ones(shape) if ones else rng.standard_normal(shape) * 0.02
        writer.add_tensor(name, values.astype(np.float32))

    add("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        add(f"blk.{i}.attn_norm.weight", hidden, ones=True)
        add(f"blk.{i}.ffn_norm.weight", hidden, ones=True)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            add(f"blk.{i}.{name}.weight", hidden, hidden)
        add(f"blk.{i}.ffn_gate.weight", 2 * hidden, hidden)
        add(f"blk.{i}.ffn_up.weight", 2 * hidden, hidden)
        add(f"blk.{i}.ffn_down.weight", hidden, 2 * hidden)
    add("output_norm.weight", hidden, ones=True)
    if not tied:
        add("output.weight", len(tokens), hidden)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
