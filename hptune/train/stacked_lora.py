"""K LoRA adapters over one frozen base, one forward and backward: a trial's seeds, or
several trials' candidates x seeds (adapters that differ in rate, decay, schedule or alpha).

Each adapted ``nn.Linear`` becomes a `StackedLoRALinear`: the base's matmul runs once over
the K adapters' sub-batches stacked along the batch (``[K * b, ...]``, adapter k's rows in
block k), and each adapter (``A[k]``, ``B[k]``, its own scaling) runs on its own block with
one batched matmul. The adapters' parameters are disjoint, so the sum of their losses gives
each adapter the gradient its own loss gives it; each adapter's parameters are tensors of
their own, so each has its own optimizer and schedule, stepping it as its own run would.

`StackedAdapters` puts K adapters of a peft model into such layers to train, and each one
back into the peft model to measure and save it (``hptune.train.together`` trains
``training.seeds_together``); ``benchmarks/seeds_together.py`` measures it against the seeds
one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "SeedStreams",
    "StackedAdapters",
    "StackedLoRALinear",
    "clip_per_adapter",
    "lora_layers",
    "stacked_batch",
]


class StackedLoRALinear(nn.Module):
    """A frozen ``nn.Linear`` with K LoRA adapters, one per block of the batch.

    Each adapter's A and B are parameters of their own (stacked in the forward pass), so each
    adapter may have its own optimizer, learning rate and schedule.

    Args:
        base: The frozen layer.
        lora_a: Each adapter's A (``[r, in_features]``).
        lora_b: Each adapter's B (``[out_features, r]``).
        scaling: Each adapter's ``alpha / r``.
        dropout: LoRA dropout's probability (on the adapter's input, as peft applies it).
        streams: Each adapter's dropout stream (`SeedStreams`); None: the global random state.
    """

    scaling: torch.Tensor  # [K, 1, 1], a buffer

    def __init__(
        self,
        base: nn.Module,
        lora_a: Sequence[torch.Tensor],
        lora_b: Sequence[torch.Tensor],
        scaling: Sequence[float],
        *,
        dropout: float = 0.0,
        streams: SeedStreams | None = None,
    ) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.ParameterList(nn.Parameter(a.detach().clone()) for a in lora_a)
        self.lora_B = nn.ParameterList(nn.Parameter(b.detach().clone()) for b in lora_b)
        device, dtype = lora_a[0].device, lora_a[0].dtype
        scales = torch.tensor(list(scaling), device=device, dtype=dtype).reshape(-1, 1, 1)
        self.register_buffer("scaling", scales, persistent=False)
        self.dropout = dropout
        self.streams = streams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        lora_a, lora_b = torch.stack(tuple(self.lora_A)), torch.stack(tuple(self.lora_B))
        k = lora_a.shape[0]
        # adapter k's tokens: block k of the batch (in the adapter's dtype, as peft casts them)
        rows = x.reshape(k, -1, x.shape[-1]).to(lora_a.dtype)
        if self.training and self.dropout > 0:
            # the kept inputs' 1 / keep is carried by A: on the [K, r, in] weights rather than
            # the [K, b x T, in] inputs, as the scaling by B below (one pass over the
            # activations each way instead of three)
            rows = self._dropped(rows)
            lora_a = lora_a / (1.0 - self.dropout)
        low = torch.bmm(rows, lora_a.transpose(1, 2))
        delta = torch.bmm(low, (lora_b * self.scaling).transpose(1, 2))
        return (out + delta.reshape(*x.shape[:-1], -1)).to(out.dtype)

    def _dropped(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` with the dropped inputs zeroed (not yet scaled by 1 / keep)."""
        keep = 1.0 - self.dropout
        if self.streams is None:
            return rows * torch.empty_like(rows).bernoulli_(keep)
        return rows.masked_fill(self.streams.dropped(rows, keep, id(self)), 0.0)


class SeedStreams:
    """Each seed's dropout stream, and the length of its own batch in the current step.

    Seed k's masks are drawn from its own generator at the shape its own batch has (``b``
    rows of its own padded length), then padded to the stacked batch's length: so what
    trains beside a seed changes none of its masks. A layer's masks are kept for the step
    (`new_step` clears them): gradient checkpointing runs a layer's forward again in the
    backward pass, and must drop what the forward dropped.

    Args:
        seeds: Each adapter's seed (its stream's start).
        device: The model's device; the masks are drawn there.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str) -> None:
        self.device = torch.device(device)
        # On a CPU, torch's generator (mt19937) draws about 12 ns a value, and LoRA dropout's
        # masks took a third of a stacked step on the demo's model; numpy's PCG64 gives 64
        # raw bits in about 1 ns, two 32-bit draws (measured: a layer's mask 5.4x faster).
        # Elsewhere torch's own device generator draws them.
        self._bits = [np.random.PCG64(seed) for seed in seeds] if self.device.type == "cpu" else []
        self.generators = (
            [] if self._bits else [torch.Generator(self.device).manual_seed(s) for s in seeds]
        )
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
        k = len(self._bits or self.generators)
        lengths = self.lengths or [0] * k
        length = max(lengths) or 1
        shape = (k, rows.shape[1] // length, length, rows.shape[-1])  # [K, b, T, features]
        drop = torch.zeros(shape, dtype=torch.bool, device=rows.device)
        for index, own in enumerate(lengths):
            own_shape = (shape[1], own or length, shape[3])
            drop[index, :, : own_shape[1]] = self._own(index, own_shape, keep)
        return drop.reshape(rows.shape)

    def _own(self, index: int, shape: tuple[int, int, int], keep: float) -> torch.Tensor:
        """Adapter ``index``'s next mask of ``shape``: dropped with probability 1 - keep."""
        if not self._bits:
            draws = torch.rand(shape, generator=self.generators[index], device=self.device)
            return draws >= keep
        count = shape[0] * shape[1] * shape[2]
        raw = self._bits[index].random_raw((count + 1) // 2).view(np.uint32)[:count]
        return torch.from_numpy(raw >= np.uint32(keep * 2**32)).reshape(shape)


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
    """K LoRA adapters on one peft model (a trial's seeds, or several trials' candidates x
    seeds): stacked to train (one forward and backward over their sub-batches), one at a time
    in the peft model to measure and save.

    Args:
        model: The peft model (its layers hold one adapter; it is the model saved).
        adapters: Per adapter, each LoRA layer's ``(A, B, scaling)``, in `lora_layers` order
            (`adapter_of`).
        streams: Each adapter's dropout stream (see `StackedLoRALinear`).
        alphas: Each adapter's LoRA alpha, written into the peft model's configuration
            when that adapter is in it (its checkpoint then says its own alpha); None: the
            model's own for all.
    """

    def __init__(
        self,
        model: nn.Module,
        adapters: list[list[tuple[torch.Tensor, torch.Tensor, float]]],
        streams: SeedStreams | None = None,
        alphas: Sequence[float] | None = None,
    ) -> None:
        self.model = model
        self.streams = streams
        self.k = len(adapters)
        self.alphas = list(alphas) if alphas is not None else None
        self.layers: list[tuple[nn.Module, str, Any, StackedLoRALinear]] = []
        for index, (name, layer) in enumerate(lora_layers(model)):
            adapter = layer.active_adapters[0]
            parent_name, _, child = name.rpartition(".")
            dropout = layer.lora_dropout[adapter]
            stacked = StackedLoRALinear(
                layer.base_layer,
                [own[index][0] for own in adapters],
                [own[index][1] for own in adapters],
                [own[index][2] for own in adapters],
                dropout=float(getattr(dropout, "p", 0.0)),
                streams=streams,
            )
            self.layers.append((model.get_submodule(parent_name), child, layer, stacked))

    @staticmethod
    def adapter_of(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        """Each LoRA layer's ``(A, B, scaling)`` in ``model`` (copies), for the constructor."""
        weights = []
        for _, layer in lora_layers(model):
            adapter = layer.active_adapters[0]
            weights.append(
                (
                    layer.lora_A[adapter].weight.detach().clone(),
                    layer.lora_B[adapter].weight.detach().clone(),
                    float(layer.scaling[adapter]),
                )
            )
        return weights

    def parameters(self, k: int | None = None) -> list[nn.Parameter]:
        """Adapter ``k``'s parameters (what its optimizer steps); None: every adapter's."""
        adapters = range(self.k) if k is None else [k]
        return [
            p
            for index in adapters
            for _, _, _, stacked in self.layers
            for p in (stacked.lora_A[index], stacked.lora_B[index])
        ]

    def stacked(self) -> nn.Module:
        """The model with the stacked layers in place: every adapter at once."""
        for parent, child, _, stacked in self.layers:
            setattr(parent, child, stacked)
        return self.model

    def seed_model(self, k: int) -> nn.Module:
        """The peft model holding adapter ``k`` (its weights and scaling copied in)."""
        with torch.no_grad():
            for parent, child, layer, stacked in self.layers:
                adapter = layer.active_adapters[0]
                layer.lora_A[adapter].weight.copy_(stacked.lora_A[k])
                layer.lora_B[adapter].weight.copy_(stacked.lora_B[k])
                layer.scaling[adapter] = float(stacked.scaling[k])
                setattr(parent, child, layer)
        config = getattr(self.model, "peft_config", {}).get("default")
        if self.alphas is not None and config is not None:
            config.lora_alpha = self.alphas[k]
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


def clip_per_adapter(
    parameters: Sequence[Sequence[torch.Tensor]], max_norms: Sequence[float | None]
) -> list[float | None]:
    """Clip each adapter's gradient to its own ``max_norm``, as its own run clips it
    (``torch.nn.utils.clip_grad_norm_`` over its parameters).

    Args:
        parameters: Each adapter's parameters (with gradients).
        max_norms: Each adapter's largest norm; None or 0: not clipped.

    Returns:
        Each adapter's norm before clipping (None where it is not clipped).
    """
    norms: list[float | None] = []
    for own, max_norm in zip(parameters, max_norms, strict=True):
        if not max_norm:
            norms.append(None)
            continue
        norms.append(float(torch.nn.utils.clip_grad_norm_(own, max_norm)))
    return norms
