"""Loading the base model and tokenizer, and wrapping the model for the fine-tuning method."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

from hptune.config import MethodConfig, ModelConfig
from hptune.demo import resolve_demo_path
from hptune.exceptions import ConfigError, ModelError, UnsupportedError

__all__ = [
    "add_adapter",
    "check_method_supported",
    "load_base_model",
    "load_model",
    "load_tokenizer",
    "model_source",
]


def check_method_supported(method: MethodConfig) -> None:
    """Refuse QLoRA up front where it cannot run (it needs CUDA and bitsandbytes)."""
    if method.type != "qlora":
        return
    import torch

    if not torch.cuda.is_available():
        raise UnsupportedError(
            "method.type is 'qlora', which needs a CUDA GPU, and none is available here; use "
            "method.type: lora (or full) on this machine, or run on a machine with a GPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UnsupportedError(
            "method.type is 'qlora', which needs the bitsandbytes package; install it with "
            "'pip install bitsandbytes' or use method.type: lora"
        )


def model_source(config: ModelConfig) -> tuple[str, dict[str, Any]]:
    """The path ``from_pretrained`` reads and its options: a hub id from the local cache only,
    unless ``model.allow_download``; a GGUF file (``model.gguf_file``) checked first
    (`hptune.train.gguf.check_gguf`) and named by ``gguf_file``.

    Raises:
        ModelError: A GGUF file transformers cannot load (the message says why).
    """
    path = resolve_demo_path(config.path)
    options: dict[str, Any] = {"trust_remote_code": config.trust_remote_code}
    if config.gguf_file is not None:
        from hptune.train.gguf import check_gguf

        check_gguf(path, config.gguf_file)
        path = str(Path(path).expanduser())
        options["gguf_file"] = config.gguf_file
    if not Path(path).expanduser().is_dir() and not config.allow_download:
        options["local_files_only"] = True
    return path, options


def _load_error(config: ModelConfig, what: str, exc: Exception) -> ModelError:
    path = resolve_demo_path(config.path)
    if not Path(path).expanduser().is_dir() and not config.allow_download:
        return ModelError(
            f"model.path: {config.path!r} is not a local folder, and as a hub id it is not in "
            f"the local Hugging Face cache ({exc.__class__.__name__}). Give the folder that "
            "save_pretrained wrote, download the model once (huggingface-cli download "
            f"{config.path}), or set model.allow_download: true"
        )
    return ModelError(f"model.path: cannot load a {what} from {config.path!r}: {exc}")


def load_tokenizer(config: ModelConfig) -> Any:
    """The model's tokenizer (``AutoTokenizer``), with a pad token.

    Raises:
        ModelError: It cannot be loaded (a hub id not cached and downloads not allowed).
    """
    from transformers import AutoTokenizer

    path, options = model_source(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **options)
    except (OSError, ValueError) as exc:
        raise _load_error(config, "tokenizer", exc) from None
    if tokenizer.pad_token is None:  # Llama-style tokenizers ship without one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


#: Where model configurations keep the number of positions they were trained on.
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def model_context(config: ModelConfig) -> int | None:
    """The tokens the model reads at most (its ``max_position_embeddings``), or None when its
    configuration does not say.

    Raises:
        ModelError: The configuration cannot be loaded.
    """
    from transformers import AutoConfig

    path, options = model_source(config)
    try:
        loaded = AutoConfig.from_pretrained(path, **options)
    except (OSError, ValueError) as exc:
        raise _load_error(config, "configuration", exc) from None
    text = loaded.get_text_config() if hasattr(loaded, "get_text_config") else loaded
    for key in _CONTEXT_KEYS:
        value = getattr(text, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(config: ModelConfig, max_length: int, longest: int) -> None:
    """Refuse a ``data.max_length`` beyond the model's context.

    Args:
        config: The model section.
        max_length: ``data.max_length``.
        longest: The longest example's tokens (any split).

    Raises:
        ConfigError: ``max_length`` is more than the model's positions.
    """
    context = model_context(config)
    if context is None or max_length <= context:
        return
    over = (
        f"the longest example has {longest} tokens, more than the model reads: lower "
        f"data.max_length to at most {context} and set data.drop_long: true to leave the "
        "longer examples out"
        if longest > context
        else f"every example fits (the longest has {longest} tokens): set data.max_length to "
        f"at most {context}"
    )
    raise ConfigError(
        f"data.max_length = {max_length} is more than the model's context: {config.path!r} "
        f"reads at most {context} tokens (max_position_embeddings); {over}"
    )


def _torch_dtype(config: ModelConfig) -> Any:
    import torch

    if config.dtype != "auto":
        return getattr(torch, config.dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolved_dtype(config: ModelConfig) -> str:
    """The dtype the model's weights load in here (``model.dtype: auto`` resolved by device):
    ``bfloat16``, ``float16`` or ``float32``."""
    return str(_torch_dtype(config)).removeprefix("torch.")


def load_model(model: ModelConfig, method: MethodConfig) -> Any:
    """Load the base model with ``from_pretrained`` and apply LoRA / QLoRA, or train it fully."""
    return add_adapter(load_base_model(model, method), method)


def load_base_model(model: ModelConfig, method: MethodConfig) -> Any:
    """The pretrained model as ``from_pretrained`` loads it (4-bit for QLoRA)."""
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.logging.disable_progress_bar()
    path, kwargs = model_source(model)
    if method.type == "qlora":
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    else:
        kwargs["dtype"] = _torch_dtype(model)
    try:
        base = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(model, "model", exc) from None
    return base


def add_adapter(base: Any, method: MethodConfig) -> Any:
    """``base`` with a fresh LoRA adapter (initialised from the current RNG state)."""
    if method.type == "full":
        return base
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if method.type == "qlora":
        base = prepare_model_for_kbit_training(base)
    lora = LoraConfig(
        r=method.r,
        lora_alpha=method.alpha,
        lora_dropout=method.dropout,
        target_modules=method.target_modules,
        task_type="CAUSAL_LM",
        **method.lora,
    )
    try:
        with warnings.catch_warnings():
            # peft calls an API that transformers renamed; the warning is noise for our users.
            warnings.filterwarnings(
                "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
            )
            return get_peft_model(base, lora)
    except ValueError as exc:  # e.g. target modules not found in this architecture
        raise ModelError(f"method.target_modules: {exc}") from None
