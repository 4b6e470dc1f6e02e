"""Stacked LoRA layers: K adapters over one frozen base compute, for each seed's block of the
batch, what that seed's own peft adapter computes, and give each adapter its own gradient."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from hptune.train.stacked_lora import StackedAdapters, StackedLoRALinear, clip_per_adapter


def _peft(model_dir: str, seed: int):
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules="all-linear"))  # fmt: skip
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero: give each seed a non-zero update
            torch.nn.init.normal_(parameter, std=0.02)
    return model


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    return torch.nn.functional.cross_entropy(shifted, labels[:, 1:].reshape(-1), reduction="sum")


def test_each_seed_s_block_gets_its_own_adapter_s_output_and_gradient(demo_path) -> None:
    model_dir = str(demo_path / "model")
    seeds = [_peft(model_dir, seed) for seed in (0, 1, 2)]
    host = _peft(model_dir, 7)  # the model the stack lives in: its own adapter is replaced
    stack = StackedAdapters(host, [StackedAdapters.adapter_of(m) for m in seeds])
    stacked = stack.stacked()
    assert any(isinstance(m, StackedLoRALinear) for m in stacked.modules())
    ids = torch.randint(5, 200, (3, 2, 12), generator=torch.Generator().manual_seed(0))
    logits = stacked(input_ids=ids.reshape(6, 12)).logits
    sum(_token_losses(logits[2 * k : 2 * k + 2], ids[k]) for k in range(3)).backward()
    for k, model in enumerate(seeds):
        own = model(input_ids=ids[k]).logits
        assert torch.allclose(logits[2 * k : 2 * k + 2], own, atol=1e-5)
        _token_losses(own, ids[k]).backward()
        [a_grad] = [p.grad for n, p in model.named_parameters()
                    if n.endswith("layers.0.self_attn.q_proj.lora_A.default.weight")]  # fmt: skip
        layer = stacked.get_submodule("base_model.model.model.layers.0.self_attn.q_proj")
        assert torch.allclose(layer.lora_A[k].grad, a_grad, atol=1e-5)
    # each seed back in the peft model: its own adapter's output again
    for k, model in enumerate(seeds):
        alone = stack.seed_model(k)(input_ids=ids[k]).logits
        assert torch.allclose(alone, model(input_ids=ids[k]).logits, atol=1e-5)


def test_each_adapter_is_clipped_by_its_own_norm() -> None:
    first, second, third = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
    first.grad = torch.tensor([3.0, 4.0, 0.0])  # norm 5
    second.grad = torch.tensor([0.3, 0.4, 0.0])  # norm 0.5
    third.grad = torch.tensor([30.0, 40.0, 0.0])  # norm 50, not clipped
    norms = clip_per_adapter([[first], [second], [third]], [1.0, 1.0, None])
    assert norms[0] == pytest.approx(5.0) and norms[1] == pytest.approx(0.5) and norms[2] is None
    assert torch.allclose(first.grad.norm(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(second.grad, torch.tensor([0.3, 0.4, 0.0]))  # under the norm: kept
    assert torch.allclose(third.grad, torch.tensor([30.0, 40.0, 0.0]))
