"""The memory model: its shape, its calibration, and its parameter counts against peft's."""

import pytest
import torch

from hptune.config import MethodConfig, ModelConfig
from hptune.train.memory import MemoryModel, is_out_of_memory

ARCH = {
    "n_params": 7_000_000_000,
    "n_trainable": 4_000_000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "n_layers": 32,
    "n_heads": 32,
    "vocab_size": 32000,
    "sequence_length": 512,
    "weight_bytes": 2.0,
    "activation_bytes": 2,
}


def test_grows_linearly_with_the_batch() -> None:
    model = MemoryModel.from_architecture(**ARCH)
    one, two, four = (model.predict(b) for b in (1, 2, 4))
    assert two - one == pytest.approx(model.per_example)
    assert four - two == pytest.approx(2 * model.per_example)
    # 7B in bf16 is 14 GB of weights before any activation
    assert model.fixed == pytest.approx(14e9 + 4e6 * 12)


def test_gradient_checkpointing_and_quantisation_cut_memory() -> None:
    plain = MemoryModel.from_architecture(**ARCH)
    checkpointed = MemoryModel.from_architecture(**ARCH, gradient_checkpointing=True)
    quantised = MemoryModel.from_architecture(**{**ARCH, "weight_bytes": 0.55})
    assert checkpointed.per_example < plain.per_example / 4
    assert quantised.fixed < plain.fixed / 3


def test_calibration_fits_measured_peaks() -> None:
    model = MemoryModel.from_architecture(**ARCH)
    measured = {1: 20e9, 2: 23e9}
    fitted = model.calibrated(measured)
    assert fitted.predict(1) == pytest.approx(20e9)
    assert fitted.predict(2) == pytest.approx(23e9)
    assert fitted.predict(8) == pytest.approx(41e9)
    assert fitted.to_dict()["calibrated_on"] == [1, 2]
    assert model.calibrated({}) is model


def test_largest_batch_under_a_limit() -> None:
    model = MemoryModel.from_architecture(**ARCH)
    limit = model.predict(8) + 1
    assert model.largest_batch(limit, [1, 2, 4, 8, 16]) == 8
    assert model.largest_batch(model.fixed, [1, 2]) is None


def test_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="hidden_size=0"):
        MemoryModel.from_architecture(**{**ARCH, "hidden_size": 0})
    with pytest.raises(ValueError, match="batch_size"):
        MemoryModel.from_architecture(**ARCH).predict(0)


def test_counts_the_parameters_peft_trains(demo_path) -> None:
    from hptune.train.model import load_model

    model_config = ModelConfig(path="demo://model")
    method = MethodConfig(type="lora", target_modules="all-linear")
    estimate = MemoryModel.for_model(model_config, method, sequence_length=64, dtype="float32")
    real = load_model(model_config, method)
    trainable = sum(p.numel() for p in real.parameters() if p.requires_grad)
    total = sum(p.numel() for p in real.parameters())
    assert estimate.weights == total * 4  # float32 on a CPU
    assert estimate.optimizer_and_gradients == trainable * 12
    full = MemoryModel.for_model(model_config, MethodConfig(type="full"), sequence_length=64,
                                 dtype="float32")  # fmt: skip
    assert full.optimizer_and_gradients > 10 * estimate.optimizer_and_gradients


def test_recognises_out_of_memory_errors() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
