"""Memory between trials: 20 runs in one process (LoRA, the base model kept, and full
fine-tuning, reloaded each run). Each run's model is freed once the run returns (a weak
reference to it is dead) and the resident memory after the third run grows by at most 10%."""

import gc
import weakref

import pytest

from hptune.config import config_from_dict
from hptune.hparams import HParams
from hptune.train import Runner
from hptune.train import runner as loop_module


def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_twenty_runs_free_their_models_and_memory_stays_flat(
    tiny_config_dict, monkeypatch, method
) -> None:
    raw = tiny_config_dict
    raw["method"] = {"type": method}
    raw["training"].update(max_train_examples=32, max_validation_examples=8, checkpoints=False)
    raw["objective"].update(eval_samples=2, max_new_tokens=4)
    runner = Runner(config_from_dict(raw))
    models: list[weakref.ref] = []
    for name in ("add_adapter", "load_model"):  # record every model a run trains
        original = getattr(loop_module, name)

        def spy(*args, _original=original, **kwargs):
            model = _original(*args, **kwargs)
            models.append(weakref.ref(model))
            return model

        monkeypatch.setattr(loop_module, name, spy)
    hp = HParams(learning_rate=1e-3, batch_size=8, gradient_accumulation_steps=1, epochs=1,
                 warmup_ratio=0.05, weight_decay=0.01)  # fmt: skip
    rss = []
    for run in range(20):
        result = runner.train(hp, seed=run, run_name=f"trial-{run}")
        assert result.epochs and not result.diverged
        assert len(models) == run + 1
        assert models[-1]() is None, f"run {run}'s model is still referenced"
        gc.collect()
        rss.append(_rss_bytes())
    growth = rss[-1] / rss[2] - 1
    assert growth <= 0.10, f"resident memory grew {growth:.1%} from run 3 to run 20: {rss}"
