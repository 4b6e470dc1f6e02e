"""Seeds together (prototype): K LoRA adapters over one frozen base, one forward and backward.

Each adapted ``nn.Linear`` becomes a `StackedLoRALinear`: the base's matmul runs once over
the K seeds' sub-batches stacked along the batch (``[K * b, ...]``, seed k's rows in block k),
and each seed's adapter (``A[k]``, ``B[k]``) runs on its own block with one batched matmul.
The adapters' parameters are disjoint, so the sum of the seeds' losses gives each adapter the
gradient its own loss gives it, and an element-wise optimizer (AdamW) over the stacked
tensors steps each seed as its own optimizer would.

This is the prototype of ``training.seeds_together``: ``benchmarks/seeds_together.py``
measures it against the seeds one after the other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["StackedLoRALinear", "clip_per_seed", "seed_losses", "stack_adapters", "stacked_batch"]


class StackedLoRALinear(nn.Module):
    """A frozen ``nn.Linear`` with K LoRA adapters, one per block of the batch.

    Args:
        base: The frozen layer.
        lora_a: ``[K, r, in_features]``: each seed's A.
        lora_b: ``[K, out_features, r]``: each seed's B.
        scaling: ``alpha / r``.
    """

    def __init__(self, base: nn.Linear, lora_a: torch.Tensor, lora_b: torch.Tensor,
                 scaling: float) -> None:  # fmt: skip
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(lora_a.detach().clone())
        self.lora_B = nn.Parameter(lora_b.detach().clone())
        self.scaling = scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        k = self.lora_A.shape[0]
        rows = x.reshape(k, -1, x.shape[-1])  # seed k's tokens: block k of the batch
        low = torch.bmm(rows, self.lora_A.transpose(1, 2))
        delta = torch.bmm(low, self.lora_B.transpose(1, 2)).reshape(*x.shape[:-1], -1)
        return out + delta * self.scaling


def stack_adapters(base: nn.Module, adapters: list[dict[str, torch.Tensor]], scaling: float) -> int:
    """Put K seeds' LoRA adapters on ``base`` (frozen) as `StackedLoRALinear` layers.

    Args:
        base: The plain model (no peft wrapper); its weights are frozen here.
        adapters: Each seed's adapter as peft saves it (``...q_proj.lora_A.weight`` names,
            as ``get_peft_model_state_dict`` gives them), the same modules for every seed.
        scaling: ``alpha / r``.

    Returns:
        How many layers were adapted.
    """
    for parameter in base.parameters():
        parameter.requires_grad_(False)
    prefix = "base_model.model."
    modules = sorted({name.removeprefix(prefix).rsplit(".lora_A", 1)[0]
                      for name in adapters[0] if ".lora_A" in name})  # fmt: skip
    for name in modules:
        parent_name, _, child = name.rpartition(".")
        parent = base.get_submodule(parent_name)
        linear = getattr(parent, child)
        a = torch.stack([_weight(adapter, name, "lora_A") for adapter in adapters])
        b = torch.stack([_weight(adapter, name, "lora_B") for adapter in adapters])
        setattr(parent, child, StackedLoRALinear(linear, a, b, scaling))
    return len(modules)


def _weight(adapter: dict[str, torch.Tensor], module: str, which: str) -> torch.Tensor:
    for key in (f"base_model.model.{module}.{which}.weight", f"{module}.{which}.weight"):
        if key in adapter:
            return adapter[key]
    raise KeyError(f"{module}.{which} is missing from an adapter")


def seed_losses(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Each seed's mean token loss (the shifted causal-LM loss over its block of the batch).

    Args:
        logits: ``[K * b, T, vocab]``.
        labels: ``[K * b, T]``, ``-100`` where nothing trains.
        k: K.

    Returns:
        ``[K]`` losses; their sum is what the backward pass takes.
    """
    shifted = logits[:, :-1].float()
    targets = labels[:, 1:]
    tokens = nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1), reduction="none"
    ).reshape(k, -1)
    counted = (targets != -100).reshape(k, -1).sum(dim=1).clamp(min=1)
    return tokens.sum(dim=1) / counted


def stacked_batch(batches: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """K sub-batches (one per seed, the same size) as one batch, padded to one length."""
    length = max(b["input_ids"].shape[1] for b in batches)

    def pad(t: torch.Tensor, value: int) -> torch.Tensor:
        return nn.functional.pad(t, (0, length - t.shape[1]), value=value)

    return {
        "input_ids": torch.cat([pad(b["input_ids"], pad_id) for b in batches]),
        "attention_mask": torch.cat([pad(b["attention_mask"], 0) for b in batches]),
        "labels": torch.cat([pad(b["labels"], -100) for b in batches]),
    }


def clip_per_seed(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip each seed's gradient to ``max_norm`` as ``clip_grad_norm_`` clips one model's:
    seed k's norm is over slice k of every stacked parameter.

    Args:
        parameters: The stacked adapters' parameters (``[K, ...]`` each, with gradients).
        max_norm: The largest norm a seed's gradient keeps.

    Returns:
        ``[K]``: each seed's norm before clipping.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    k = grads[0].shape[0]
    norms = torch.stack([g.reshape(k, -1).pow(2).sum(dim=1) for g in grads]).sum(dim=0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # clip_grad_norm_'s own epsilon
    for g in grads:
        g.mul_(scale.reshape(k, *([1] * (g.dim() - 1))))
    return norms
