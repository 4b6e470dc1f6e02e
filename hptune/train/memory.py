"""How much device memory a training step needs: a model from the architecture, and a probe.

The estimate is the sum of what a training step keeps alive at its peak:

* the weights, at the load dtype (4-bit for a QLoRA base);
* for every trainable parameter, an fp32 gradient and AdamW's two fp32 moments;
* the activations saved for the backward pass, per token: a multiple of the hidden size and
  of the MLP width per layer, the attention scores (heads x sequence) per layer, and the
  logits (vocabulary) with their fp32 copies for the loss; with gradient checkpointing only
  each layer's input is kept, plus one layer recomputed at a time.

The constants are deliberately a little generous; on a GPU, `probe_peak_memory` measures
two small batches and `MemoryModel.calibrated` fits the fixed and per-example terms to
them, so the prediction for larger batches rests on measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from hptune.train.model import model_source

if TYPE_CHECKING:
    from hptune.config import MethodConfig, ModelConfig

__all__ = [
    "MemoryModel",
    "is_out_of_memory",
    "parameter_counts",
    "probe_peak_memory",
    "trainable_parameters",
]

# Saved activations per token and layer, in units of the hidden size and of the MLP width
# (a Llama block keeps about 10 hidden-sized and 5 MLP-sized tensors; LoRA dropout adds more).
_HIDDEN_TERMS = 16
_MLP_TERMS = 6
# Logits kept per token, in bytes per vocabulary entry: the logits at the activation dtype,
# their fp32 upcast and the fp32 gradient of the cross-entropy.
_LOGIT_BYTES_EXTRA = 8
_QLORA_BYTES_PER_PARAM = 0.55  # 4-bit weights plus their quantisation constants


@dataclass(frozen=True)
class MemoryModel:
    """Predicted peak memory of a training step: ``fixed + batch x per_example``.

    Build one with `from_architecture` (or `for_model`); every figure is in bytes.
    """

    weights: float
    optimizer_and_gradients: float
    activations_per_token: float
    sequence_length: int
    parameters: int = 0  # of the model with its adapter, for a throughput estimate
    calibration: dict[int, float] | None = None
    _fit: tuple[float, float] | None = None  # (fixed, per_example) from the calibration

    @classmethod
    def from_architecture(
        cls,
        *,
        n_params: int,
        n_trainable: int,
        hidden_size: int,
        intermediate_size: int,
        n_layers: int,
        n_heads: int,
        vocab_size: int,
        sequence_length: int,
        weight_bytes: float,
        activation_bytes: int,
        gradient_checkpointing: bool = False,
    ) -> MemoryModel:
        if min(n_params, hidden_size, n_layers, n_heads, vocab_size, sequence_length) <= 0:
            raise ValueError(
                "every size must be positive, got "
                f"{n_params=}, {hidden_size=}, {n_layers=}, {n_heads=}, {vocab_size=}, "
                f"{sequence_length=}"
            )
        per_layer = activation_bytes * (
            _HIDDEN_TERMS * hidden_size
            + _MLP_TERMS * intermediate_size
            + 2 * n_heads * sequence_length  # scores and softmax of eager attention
        )
        if gradient_checkpointing:
            layers = activation_bytes * hidden_size * n_layers + per_layer
        else:
            layers = per_layer * n_layers
        logits = vocab_size * (activation_bytes + _LOGIT_BYTES_EXTRA)
        return cls(
            weights=n_params * weight_bytes,
            optimizer_and_gradients=n_trainable * 12.0,  # fp32 gradient + two AdamW moments
            activations_per_token=layers + logits,
            sequence_length=sequence_length,
            parameters=n_params,
        )

    @classmethod
    def for_model(
        cls,
        model: ModelConfig,
        method: MethodConfig,
        *,
        sequence_length: int,
        gradient_checkpointing: bool = False,
        dtype: str = "float32",
    ) -> MemoryModel:
        """The estimate for a configured model, built on the meta device (no weights loaded).

        Args:
            model: The model section (``config.json`` is read; the weights are not).
            method: The method: LoRA's trainable parameters, QLoRA's 4-bit base.
            sequence_length: The longest training example, in tokens.
            gradient_checkpointing: Activations recomputed in the backward pass.
            dtype: The dtype the weights load in on the target (see
                `hptune.train.target.Target.dtype`); a QLoRA base is 4-bit and
                computes in bfloat16 whatever it is.

        Returns:
            The estimate.
        """
        config, n_params, n_trainable = _count_parameters(model, method)
        dtype_bytes = 4 if dtype == "float32" else 2
        if method.type == "qlora":
            weight_bytes, dtype_bytes = _QLORA_BYTES_PER_PARAM, 2
        else:
            weight_bytes = float(dtype_bytes)
        hidden = int(config.hidden_size)
        return cls.from_architecture(
            n_params=n_params,
            n_trainable=n_trainable,
            hidden_size=hidden,
            intermediate_size=int(getattr(config, "intermediate_size", None) or 4 * hidden),
            n_layers=int(config.num_hidden_layers),
            n_heads=int(config.num_attention_heads),
            vocab_size=int(config.vocab_size),
            sequence_length=sequence_length,
            weight_bytes=weight_bytes,
            activation_bytes=dtype_bytes,
            gradient_checkpointing=gradient_checkpointing,
        )

    @property
    def fixed(self) -> float:
        """Memory that does not grow with the batch."""
        if self._fit is not None:
            return self._fit[0]
        return self.weights + self.optimizer_and_gradients

    @property
    def per_example(self) -> float:
        """Memory each example of a batch adds, at the longest sequence."""
        if self._fit is not None:
            return self._fit[1]
        return self.activations_per_token * self.sequence_length

    def predict(self, batch_size: int, seeds: int = 1) -> float:
        """Predicted peak bytes of one training step at ``batch_size``; with ``seeds`` K
        trained together (``training.seeds_together``), K adapters with their gradients and
        optimizer states, and K sub-batches' activations, over the one base."""
        if batch_size < 1 or seeds < 1:
            raise ValueError(
                f"batch_size and seeds must be at least 1, got {batch_size=}, {seeds=}"
            )
        adapters = (seeds - 1) * self.optimizer_and_gradients
        return self.fixed + adapters + seeds * batch_size * self.per_example

    def largest_batch(self, limit_bytes: float, candidates: list[int]) -> int | None:
        """The largest candidate predicted to fit in ``limit_bytes``, or None."""
        fitting = [b for b in candidates if self.predict(b) <= limit_bytes]
        return max(fitting) if fitting else None

    def calibrated(self, measured: dict[int, float]) -> MemoryModel:
        """Fit ``fixed`` and ``per_example`` to measured peaks (batch size -> bytes).

        With one measurement only the per-example term is rescaled; with two or more, both
        terms come from a least-squares line. A fit that makes either term negative (noise
        on a tiny model) keeps the estimate's per-example term and moves only the fixed one.
        """
        if not measured:
            return self
        points = sorted(measured.items())
        if len(points) == 1:
            batch, peak = points[0]
            per_example = max((peak - self.fixed) / batch, self.per_example * 0.1)
            fit = (peak - batch * per_example, per_example)
        else:
            n = len(points)
            mean_b = sum(b for b, _ in points) / n
            mean_m = sum(m for _, m in points) / n
            var = sum((b - mean_b) ** 2 for b, _ in points)
            slope = sum((b - mean_b) * (m - mean_m) for b, m in points) / var
            fit = (mean_m - slope * mean_b, slope)
            if fit[0] < 0 or fit[1] <= 0:
                fit = (max(m - b * self.per_example for b, m in points), self.per_example)
        return replace(self, calibration=dict(measured), _fit=fit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fixed_bytes": round(self.fixed),
            "per_example_bytes": round(self.per_example),
            "sequence_length": self.sequence_length,
            "calibrated_on": sorted(self.calibration) if self.calibration else None,
        }


def _count_parameters(model: ModelConfig, method: MethodConfig) -> tuple[Any, int, int]:
    """Total and trainable parameters, counted on an empty (meta-device) model."""
    import warnings

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path, options = model_source(model)
    config = AutoConfig.from_pretrained(path, **options)
    # The meta device rather than accelerate's init_empty_weights: under the latter a tied
    # output matrix (SmolLM2's) comes untied and counts twice.
    with torch.device("meta"), warnings.catch_warnings():
        # Counting builds the adapter once more: peft reads transformers' deprecated
        # is_gradient_checkpointing (a FutureWarning, also ignored where the real adapter is
        # built) and, on a Conv1D model such as GPT-2, says it sets fan_in_fan_out (a
        # UserWarning that building the real adapter shows anyway).
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        warnings.filterwarnings(
            "ignore", message="fan_in_fan_out is set to False", category=UserWarning
        )
        empty = AutoModelForCausalLM.from_config(config, trust_remote_code=model.trust_remote_code)
        if method.type != "full":
            from peft import LoraConfig, get_peft_model

            empty = get_peft_model(
                empty,
                LoraConfig(
                    r=method.r,
                    lora_alpha=method.alpha,
                    lora_dropout=method.dropout,
                    target_modules=method.target_modules,
                    task_type="CAUSAL_LM",
                    **method.lora,
                ),
            )
    n_params = sum(p.numel() for p in empty.parameters())
    n_trainable = sum(p.numel() for p in empty.parameters() if p.requires_grad)
    return config, n_params, n_trainable


def parameter_counts(model: ModelConfig, method: MethodConfig) -> tuple[int, int]:
    """All of the model's parameters (the adapter's included) and those ``method`` trains.

    Args:
        model: The model section (its ``config.json`` is read, not its weights).
        method: The method.

    Returns:
        ``(total, trainable)``.
    """
    _, total, trainable = _count_parameters(model, method)
    return total, trainable


def trainable_parameters(model: ModelConfig, method: MethodConfig) -> int:
    """The parameters ``method`` trains on ``model`` (counted on the meta device).

    Args:
        model: The model section (its ``config.json`` is read, not its weights).
        method: The method: full fine-tuning trains every parameter, LoRA its adapter.

    Returns:
        The trainable parameters.
    """
    return _count_parameters(model, method)[2]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device (or host) out-of-memory error from torch."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    message = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in message.lower() or "can't allocate memory" in message
    )


def probe_peak_memory(
    model: Any, batch_maker: Any, batch_sizes: list[int], *, device: Any = None
) -> dict[int, float]:
    """Measure the peak CUDA memory of one training step (forward, backward, AdamW) per batch.

    ``batch_maker(b)`` returns a batch of ``b`` of the longest training examples. The steps
    change ``model``'s trainable weights: pass a throwaway copy. Stops at the first batch
    size that runs out of memory. Returns an empty dict without CUDA (host memory has no
    comparable peak counter).
    """
    import torch

    if not torch.cuda.is_available():
        return {}
    device = device or torch.device("cuda")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-9)
    measured: dict[int, float] = {}
    for batch_size in batch_sizes:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            batch = {k: v.to(device) for k, v in batch_maker(batch_size).items()}
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()  # allocates the AdamW moments, part of every real step's peak
            measured[batch_size] = float(torch.cuda.max_memory_allocated(device))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            break
        finally:
            optimizer.zero_grad(set_to_none=True)
    del optimizer
    torch.cuda.empty_cache()
    return measured
