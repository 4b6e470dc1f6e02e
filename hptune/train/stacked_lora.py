"""Seeds together: K LoRA adapters over one frozen base, one forward and backward.

Each adapted ``nn.Linear`` becomes a `StackedLoRALinear`: the base's matmul runs once over
the K seeds' sub-batches stacked along the batch (``[K * b, ...]``, seed k's rows in block k),
and each seed's adapter (``A[k]``, ``B[k]``) runs on its own block with one batched matmul.
The adapters' parameters are disjoint, so the sum of the seeds' losses gives each adapter the
gradient its own loss gives it, and an element-wise optimizer (AdamW) over the stacked
tensors steps each seed as its own optimizer would.

`StackedAdapters` puts the K seeds' adapters of a peft model into such layers to train, and
each seed's back into the peft model to measure and save it (``hptune.train.together`` trains
``training.seeds_together``); ``benchmarks/seeds_together.py`` measures it against the seeds
one after the other.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "SeedStreams",
    "StackedAdapters",
    "StackedLoRALinear",
    "clip_per_seed",
    "lora_layers",
    "stacked_batch",
]


class StackedLoRALinear(nn.Module):
    """A frozen ``nn.Linear`` with K LoRA adapters, one per block of the batch.

    Args:
        base: The frozen layer.
        lora_a: ``[K, r, in_features]``: each seed's A.
        lora_b: ``[K, out_features, r]``: each seed's B.
        scaling: ``alpha / r``.
        dropout: LoRA dropout's probability (on the adapter's input, as peft applies it).
        streams: Each seed's dropout stream (`SeedStreams`); None: the global random state.
    """

    def __init__(
        self,
        base: nn.Module,
        lora_a: torch.Tensor,
        lora_b: torch.Tensor,
        scaling: float,
        *,
        dropout: float = 0.0,
        streams: SeedStreams | None = None,
    ) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(lora_a.detach().clone())
        self.lora_B = nn.Parameter(lora_b.detach().clone())
        self.scaling = scaling
        self.dropout = dropout
        self.streams = streams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        k = self.lora_A.shape[0]
        # seed k's tokens: block k of the batch (in the adapter's dtype, as peft casts them)
        rows = x.reshape(k, -1, x.shape[-1]).to(self.lora_A.dtype)
        if self.training and self.dropout > 0:
            rows = self._dropped(rows)
        low = torch.bmm(rows, self.lora_A.transpose(1, 2))
        delta = torch.bmm(low, self.lora_B.transpose(1, 2)).reshape(*x.shape[:-1], -1)
        return (out + delta * self.scaling).to(out.dtype)

    def _dropped(self, rows: torch.Tensor) -> torch.Tensor:
        keep = 1.0 - self.dropout
        if self.streams is None:
            return nn.functional.dropout(rows, self.dropout, training=True)
        return rows.masked_fill(self.streams.dropped(rows, keep, id(self)), 0.0) / keep


class SeedStreams:
    """Each seed's dropout stream, and the length of its own batch in the current step.

    Seed k's masks are drawn from its own generator at the shape its own batch has (``b``
    rows of its own padded length), then padded to the stacked batch's length: so what
    trains beside a seed changes none of its masks. A layer's masks are kept for the step
    (`new_step` clears them): gradient checkpointing runs a layer's forward again in the
    backward pass, and must drop what the forward dropped.

    Args:
        generators: One random generator per seed, on the model's device.
    """

    def __init__(self, generators: list[torch.Generator]) -> None:
        self.generators = generators
        #: Each seed's own padded length in the current step (set by the loop); None: all
        #: the stacked length.
        self.lengths: list[int] | None = None
        self._drawn: dict[int, torch.Tensor] = {}  # this step's masks, by layer

    def new_step(self, lengths: list[int]) -> None:
        """A new forward pass over batches of these lengths: new masks."""
        self.lengths = lengths
        self._drawn = {}

    def dropped(self, rows: torch.Tensor, keep: float, layer: int) -> torch.Tensor:
        """Where ``rows`` (``[K, b x T, features]``, seed k's tokens in block k) are dropped
        in ``layer`` this step, as a boolean mask (one byte a value, as peft's dropout)."""
        if layer in self._drawn:  # the layer's forward again (gradient checkpointing)
            return self._drawn[layer]
        self._drawn[layer] = self._draw(rows, keep)
        return self._drawn[layer]

    def _draw(self, rows: torch.Tensor, keep: float) -> torch.Tensor:
        k = len(self.generators)
        lengths = self.lengths or [0] * k
        length = max(lengths) or 1
        shape = (k, rows.shape[1] // length, length, rows.shape[-1])  # [K, b, T, features]
        drop = torch.zeros(shape, dtype=torch.bool, device=rows.device)
        for index, (generator, own) in enumerate(zip(self.generators, lengths, strict=True)):
            own = own or length
            draws = torch.rand((shape[1], own, shape[3]), generator=generator, device=rows.device)
            drop[index, :, :own] = draws >= keep
        return drop.reshape(rows.shape)


def lora_layers(model: nn.Module) -> list[tuple[str, Any]]:
    """The peft LoRA layers of ``model`` that `StackedAdapters` can stack, by module name.

    Raises:
        ValueError: A LoRA layer that is not a plain linear adapter (DoRA, an embedding...).
    """
    from peft.tuners.lora import LoraLayer

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    for name, layer in layers:
        adapter = layer.active_adapters[0]
        plain = adapter in layer.lora_A and not getattr(layer, "lora_variant", {}).get(adapter)
        if not plain or getattr(layer, "lora_bias", {}).get(adapter):
            raise ValueError(
                f"{name}: only plain LoRA linear adapters (no DoRA, no LoRA bias, "
                "no embedding) train together"
            )
    return layers


class StackedAdapters:
    """K seeds' LoRA adapters on one peft model: stacked to train (one forward and backward
    over the seeds' sub-batches), one seed's at a time in the peft model to measure and save.

    Args:
        model: The peft model (its layers hold one seed's adapter; it is the model saved).
        adapters: Per seed, each LoRA layer's ``(A, B)`` weights, in `lora_layers` order.
        streams: Each seed's dropout stream (see `StackedLoRALinear`).
    """

    def __init__(
        self,
        model: nn.Module,
        adapters: list[list[tuple[torch.Tensor, torch.Tensor]]],
        streams: SeedStreams | None = None,
    ) -> None:
        self.model = model
        self.streams = streams
        self.k = len(adapters)
        self.layers: list[tuple[nn.Module, str, Any, StackedLoRALinear]] = []
        for index, (name, layer) in enumerate(lora_layers(model)):
            adapter = layer.active_adapters[0]
            parent_name, _, child = name.rpartition(".")
            dropout = layer.lora_dropout[adapter]
            stacked = StackedLoRALinear(
                layer.base_layer,
                torch.stack([seed[index][0] for seed in adapters]),
                torch.stack([seed[index][1] for seed in adapters]),
                float(layer.scaling[adapter]),
                dropout=float(getattr(dropout, "p", 0.0)),
                streams=streams,
            )
            self.layers.append((model.get_submodule(parent_name), child, layer, stacked))

    @staticmethod
    def adapter_of(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each LoRA layer's ``(A, B)`` weights in ``model`` (copies), for the constructor."""
        weights = []
        for _, layer in lora_layers(model):
            adapter = layer.active_adapters[0]
            weights.append(
                (
                    layer.lora_A[adapter].weight.detach().clone(),
                    layer.lora_B[adapter].weight.detach().clone(),
                )
            )
        return weights

    def parameters(self) -> list[nn.Parameter]:
        """The stacked adapters' parameters (``[K, ...]`` each): what the optimizer steps."""
        return [p for _, _, _, stacked in self.layers for p in (stacked.lora_A, stacked.lora_B)]

    def stacked(self) -> nn.Module:
        """The model with the stacked layers in place: every seed at once."""
        for parent, child, _, stacked in self.layers:
            setattr(parent, child, stacked)
        return self.model

    def seed_model(self, k: int) -> nn.Module:
        """The peft model holding seed ``k``'s adapter (its weights copied in)."""
        with torch.no_grad():
            for parent, child, layer, stacked in self.layers:
                adapter = layer.active_adapters[0]
                layer.lora_A[adapter].weight.copy_(stacked.lora_A[k])
                layer.lora_B[adapter].weight.copy_(stacked.lora_B[k])
                setattr(parent, child, layer)
        return self.model


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
