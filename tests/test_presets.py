import pytest

from hptune import presets


def test_learning_rate_by_method() -> None:
    assert presets.learning_rate_for("lora") == 1e-4
    assert presets.learning_rate_for("full") == 1e-5
    assert presets.learning_rate_for("qlora") == 2e-4
    with pytest.raises(ValueError, match="method="):
        presets.learning_rate_for("prefix")


@pytest.mark.parametrize(
    ("memory", "expected"),
    [(16, (4, 8)), (20, (4, 8)), (24, (8, 16)), (40, (16, 32)), (80, (16, 32)), (None, (4, 8))],
)
def test_batch_size_by_gpu_memory(memory: float | None, expected: tuple[int, int]) -> None:
    assert presets.batch_size_range_for(memory) == expected


@pytest.mark.parametrize(
    ("n", "expected"), [(1, (3, 5)), (999, (3, 5)), (1000, (2, 3)), (9999, (2, 3)), (10**6, (1, 2))]
)
def test_epochs_by_train_size(n: int, expected: tuple[int, int]) -> None:
    assert presets.epochs_range_for(n) == expected


def test_epochs_refuse_empty_training_set() -> None:
    with pytest.raises(ValueError, match="n_train_examples=0"):
        presets.epochs_range_for(0)


def test_situations_are_the_methods_table() -> None:
    pro, free, a100 = (presets.SITUATIONS[k] for k in ("colab_pro", "colab_free", "aws_a100"))
    assert (pro.method, pro.learning_rate, pro.batch_size, pro.gradient_accumulation_steps,
            pro.epochs) == ("lora", 1e-4, 4, 4, 3)  # fmt: skip
    assert (free.method, free.learning_rate, free.batch_size, free.gradient_accumulation_steps,
            free.epochs) == ("qlora", 2e-4, 8, 2, 3)  # fmt: skip
    assert (a100.method, a100.learning_rate, a100.batch_size, a100.gradient_accumulation_steps,
            a100.epochs) == ("lora", 1e-4, 16, 2, 2)  # fmt: skip


def test_fill_precedence_user_then_situation_then_table() -> None:
    values, sources = presets.fill_training(
        {"learning_rate": 3e-4},
        method="lora",
        situation="colab_pro",
        gpu_memory_gb=None,
        n_train_examples=50_000,
    )
    assert values["learning_rate"] == 3e-4 and sources["learning_rate"] == "config"
    assert values["batch_size"] == 4 and sources["batch_size"] == "situation: colab_pro"
    assert values["epochs"] == 3 and sources["epochs"] == "situation: colab_pro"
    assert values["warmup_ratio"] == 0.05 and sources["warmup_ratio"].startswith("table")
    assert values["weight_decay"] == 0.01


def test_fill_from_tables_alone() -> None:
    values, sources = presets.fill_training(
        {}, method="full", situation=None, gpu_memory_gb=24, n_train_examples=5000
    )
    assert values == {
        "learning_rate": 1e-5,
        "batch_size": 8,
        "gradient_accumulation_steps": 1,
        "epochs": 2,
        "warmup_ratio": 0.05,
        "weight_decay": 0.01,
    }
    assert all(s != "config" for s in sources.values())
