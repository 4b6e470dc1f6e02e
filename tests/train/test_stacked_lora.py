"""Seeds together (prototype): K adapters stacked over one frozen base compute, for each
seed's block of the batch, what that seed's own peft adapter computes, and train each seed as
its own optimizer would."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
from transformers import AutoModelForCausalLM

from hptune.train.stacked_lora import StackedLoRALinear, seed_losses, stack_adapters


def _peft(model_dir: str, seed: int):
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules="all-linear"))  # fmt: skip
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero: give each seed a non-zero update
            torch.nn.init.normal_(parameter, std=0.02)
    return model


def test_each_seed_s_block_gets_its_own_adapter_s_output_and_gradient(demo_path) -> None:
    model_dir = str(demo_path / "model")
    seeds = [_peft(model_dir, seed) for seed in (0, 1, 2)]
    adapters = [get_peft_model_state_dict(m) for m in seeds]
    stacked = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    assert stack_adapters(stacked, adapters, 8 / 4) > 0
    assert any(isinstance(m, StackedLoRALinear) for m in stacked.modules())
    ids = torch.randint(5, 200, (3, 2, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    logits = stacked(input_ids=ids.reshape(6, 12)).logits
    losses = seed_losses(logits, labels.reshape(6, 12), 3)
    losses.sum().backward()
    for k, model in enumerate(seeds):
        own = model(input_ids=ids[k]).logits
        assert torch.allclose(logits[2 * k : 2 * k + 2], own, atol=1e-5)
        own_loss = seed_losses(own, labels[k], 1)
        assert torch.allclose(losses[k], own_loss[0], atol=1e-6)
        own_loss.sum().backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        [a_grad] = [
            g
            for n, g in grads.items()
            if n.endswith("layers.0.self_attn.q_proj.lora_A.default.weight")
        ]
        layer = stacked.get_submodule("model.layers.0.self_attn.q_proj")
        assert torch.allclose(layer.lora_A.grad[k], a_grad, atol=1e-6)
