"""Seeds together (training.seeds_together): K seeds' adapters over one base in one loop train
each seed as its own run does, with its own dropout stream, and stop seed by seed."""

from __future__ import annotations

import math
import statistics

import pytest

from hptune.config import config_from_dict
from hptune.exceptions import ConfigError
from hptune.hparams import HParams
from hptune.train import Runner
from hptune.train.together import (
    Member,
    kept_apart,
    seeds_per_step,
    train_group,
    train_together,
    trains_together,
)

HP = HParams(learning_rate=1e-2, batch_size=4, gradient_accumulation_steps=2, epochs=2,
             warmup_ratio=0.1, weight_decay=0.01)  # fmt: skip


def _raw(tmp_path, dropout: float = 0.0, **training) -> dict:
    return {
        "model": {"path": "demo://model"},
        "method": {"type": "lora", "target_modules": "all-linear", "dropout": dropout},
        "data": {"train": "demo://data/train.jsonl", "validation": "demo://data/validation.jsonl",
                 "template": "Question: {question}\nAnswer: "},
        "objective": {"seeds": 3},
        "training": {"max_train_examples": 64, "max_validation_examples": 32,
                     "seeds_together": True, **training},
        "output_dir": str(tmp_path / "out"),
    }  # fmt: skip


@pytest.fixture(scope="module")
def runner(demo_path, tmp_path_factory) -> Runner:
    return Runner(config_from_dict(_raw(tmp_path_factory.mktemp("together"), checkpoints=False)))


@pytest.fixture(scope="module")
def dropout_runner(demo_path, tmp_path_factory) -> Runner:
    path = tmp_path_factory.mktemp("dropout")
    return Runner(config_from_dict(_raw(path, dropout=0.1, checkpoints=False)))


def test_each_seed_trains_as_its_own_run_without_dropout(runner: Runner) -> None:
    seeds = [0, 1, 2]
    alone = [runner.train(HP, s) for s in seeds]
    together = train_together(runner, HP, seeds, [None] * 3)
    worst = max(
        abs(a.eval_loss - b.eval_loss) / a.eval_loss
        for x, y in zip(alone, together, strict=True)
        for a, b in zip(x.epochs, y.epochs, strict=True)
    )
    print(f"largest relative difference of a seed's epoch validation loss: {worst:.2e}")
    assert worst < 1e-3
    for x, y in zip(alone, together, strict=True):
        assert [e.epoch for e in y.epochs] == [1, 2]
        assert y.train_examples == x.train_examples and y.train_tokens == x.train_tokens
        assert [e.train_loss for e in y.epochs] == pytest.approx([e.train_loss for e in x.epochs],
                                                                 rel=1e-3)  # fmt: skip
        assert y.initial_eval_loss == x.initial_eval_loss
    # the stack's time is shared alike: the seeds' seconds add up to it
    assert len({r.seconds for r in together}) == 1 and together[0].seconds > 0


def test_each_seed_draws_dropout_from_its_own_stream(dropout_runner: Runner) -> None:
    hp = HP.replace(epochs=1)
    with_one = train_together(dropout_runner, hp, [0, 1], [None] * 2)
    with_five = train_together(dropout_runner, hp, [0, 5], [None] * 2)
    # seed 0 is the same run whatever trains beside it ...
    assert with_one[0].epochs[0].eval_loss == pytest.approx(with_five[0].epochs[0].eval_loss,
                                                            rel=1e-6)  # fmt: skip
    # ... and dropout does draw: seed 1 beside seed 0 is not seed 0's run
    again = train_together(dropout_runner, hp, [1, 0], [None] * 2)
    assert again[1].epochs[0].eval_loss == pytest.approx(with_one[0].epochs[0].eval_loss,
                                                         rel=1e-6)  # fmt: skip


def test_with_dropout_the_seeds_means_agree_within_noise(dropout_runner: Runner) -> None:
    seeds = [0, 1, 2, 3]
    alone = [r.epochs[-1].eval_loss for r in (dropout_runner.train(HP, s) for s in seeds)]
    together = [r.epochs[-1].eval_loss for r in train_together(dropout_runner, HP, seeds,
                                                                [None] * 4)]  # fmt: skip
    gap = statistics.fmean(together) - statistics.fmean(alone)
    noise = math.sqrt((statistics.variance(alone) + statistics.variance(together)) / len(seeds))
    means = f"alone {statistics.fmean(alone):.4f}, together {statistics.fmean(together):.4f}"
    print(f"seed means: {means}; gap {gap:+.4f}, its standard error {noise:.4f}")
    assert together != pytest.approx(alone, rel=1e-4)  # other dropout masks
    assert abs(gap) < 3 * noise


# Candidates that differ in what one adapter holds on its own: rate, decay, schedule, warmup,
# clipping, alpha.
CANDIDATES = [
    HP,
    HP.replace(learning_rate=3e-3, weight_decay=0.1, scheduler="cosine", warmup_ratio=0.0,
               max_grad_norm=0.5),
    HP.replace(learning_rate=1e-3, scheduler="constant", lora_alpha=32, max_grad_norm=None),
]  # fmt: skip


def test_candidates_together_train_as_their_own_runs_without_dropout(runner: Runner) -> None:
    seeds = [0, 1]
    members = [Member(hp, seeds, [None, None]) for hp in CANDIDATES]
    together = train_group(runner, members)
    worst = 0.0
    for hp, runs in zip(CANDIDATES, together, strict=True):
        for seed, run in zip(seeds, runs, strict=True):
            alone = runner.train(hp, seed)
            assert [e.learning_rate for e in run.epochs] == pytest.approx(
                [e.learning_rate for e in alone.epochs], rel=1e-9
            )
            for a, b in zip(alone.epochs, run.epochs, strict=True):
                worst = max(worst, abs(a.eval_loss - b.eval_loss) / a.eval_loss)
    print(f"largest relative difference of a candidate's seed validation loss: {worst:.2e}")
    assert worst < 1e-3
    # the candidates did train apart: their values differ
    last = [runs[0].epochs[-1].eval_loss for runs in together]
    assert len({round(v, 6) for v in last}) == 3


def test_a_candidate_that_diverges_or_is_pruned_stops_alone(runner: Runner) -> None:
    wild = HP.replace(learning_rate=1e30, max_grad_norm=None, warmup_ratio=0.0)
    pruned = {"now": False}

    def prune_at_one(seed, metrics):
        pruned["now"] = True
        return False

    members = [Member(wild, [0, 1], [None, None]), Member(HP, [0, 1], [None, None]),
               Member(HP.replace(learning_rate=3e-3), [0], [prune_at_one],
                      stopped=lambda: pruned["now"])]  # fmt: skip
    diverging, steady, stopped = train_group(runner, members)
    assert any(r.diverged for r in diverging) and all(len(r.epochs) == 0 for r in diverging)
    assert [len(r.epochs) for r in steady] == [2, 2] and not any(r.diverged for r in steady)
    assert [len(r.epochs) for r in stopped] == [1]


def test_what_keeps_candidates_apart_is_said() -> None:
    assert kept_apart(HP, CANDIDATES[1]) is None and kept_apart(HP, CANDIDATES[2]) is None
    assert kept_apart(HP, HP.replace(batch_size=8)) == "batch size 4 against 8"
    assert kept_apart(HP, HP.replace(epochs=3)) == "epochs 2 against 3"
    assert kept_apart(HP, HP.replace(lora_r=16)) == "lora r None against 16"
    with pytest.raises(ValueError, match="train apart: gradient accumulation steps 2 against 4"):
        apart = HP.replace(gradient_accumulation_steps=4)
        train_group(None, [Member(HP, [0], [None]), Member(apart, [0], [None])])  # type: ignore[arg-type]


def test_gradient_checkpointing_drops_what_the_forward_dropped(demo_path, tmp_path) -> None:
    # Recomputed in the backward pass, a layer must drop the same inputs as in the forward
    # (QLoRA's prepared base checkpoints too): the same seeds train alike with and without.
    hp = HP.replace(epochs=1)
    plain = Runner(config_from_dict(_raw(tmp_path / "plain", dropout=0.1, checkpoints=False)))
    again = _raw(tmp_path / "again", dropout=0.1, checkpoints=False, gradient_checkpointing=True)
    recomputed = Runner(config_from_dict(again))
    without = train_together(plain, hp, [0, 1], [None, None])
    with_it = train_together(recomputed, hp, [0, 1], [None, None])
    for a, b in zip(without, with_it, strict=True):
        assert b.epochs[0].eval_loss == pytest.approx(a.epochs[0].eval_loss, rel=1e-5)


def test_a_seed_stops_alone_and_the_trial_stops_all(runner: Runner) -> None:
    hp = HP.replace(epochs=3)

    def stop_after(epoch: int):
        return lambda seed, metrics: metrics.epoch < epoch

    runs = train_together(runner, hp, [0, 1, 2], [None, stop_after(1), None])
    assert [len(r.epochs) for r in runs] == [3, 1, 3]
    assert [r.stopped_early for r in runs] == [False, True, False]
    # the stack's time goes to the seeds still training: a stopped seed rides for free
    assert runs[1].seconds < runs[0].seconds == runs[2].seconds
    assert runs[1].train_examples * 3 == runs[0].train_examples
    pruned = {"now": False}

    def prune_at_two(seed, metrics):
        pruned["now"] = metrics.epoch == 2
        return not pruned["now"]

    runs = train_together(runner, hp, [0, 1, 2], [prune_at_two, None, None],
                          stopped=lambda: pruned["now"])  # fmt: skip
    assert [len(r.epochs) for r in runs] == [2, 1, 1]  # seeds 1 and 2 stop before epoch 2's end


def test_one_diverging_seed_stops_the_stack(runner: Runner) -> None:
    hp = HP.replace(learning_rate=1e30, max_grad_norm=None, warmup_ratio=0.0)
    runs = train_together(runner, hp, [0, 1], [None, None])
    diverged = [r for r in runs if r.diverged]
    assert len(diverged) == 1 and diverged[0].diverged_at.startswith("epoch 1, step")
    assert all(len(r.epochs) == 0 for r in runs)


def test_checkpoints_are_each_seed_s_own_adapter(demo_path, tmp_path) -> None:
    from hptune.train.checkpoints import latest_checkpoint, load_weights

    runner = Runner(config_from_dict(_raw(tmp_path)))
    hp = HP.replace(epochs=1)
    together = train_together(runner, hp, [0, 1], [None, None], run_name="t/trial-0")
    saved = [load_weights(latest_checkpoint(tmp_path / "out" / "checkpoints" / "t" / "trial-0" /
                                            f"seed-{s}")) for s in (0, 1)]  # fmt: skip
    assert saved[0].keys() == saved[1].keys() and any("lora_A" in k for k in saved[0])
    name = next(k for k in saved[0] if "lora_B" in k)
    assert not saved[0][name].equal(saved[1][name])
    alone = runner.train(hp, 1, run_name="a/trial-0")
    own = load_weights(latest_checkpoint(tmp_path / "out" / "checkpoints" / "a" / "trial-0" /
                                         "seed-1"))  # fmt: skip
    assert (own[name] - saved[1][name]).abs().max() < 1e-4
    assert together[1].epochs[0].eval_loss == pytest.approx(alone.epochs[0].eval_loss, rel=1e-3)


def _bounded_stacks(monkeypatch) -> None:
    """Stacks bounded by ``phases.batch_size.memory_limit_gb`` on this CPU, as on a GPU."""
    import hptune.pipeline._groups
    import hptune.train.together
    from hptune.train.target import memory_check

    monkeypatch.setattr(hptune.train.together, "stack_check", memory_check)
    monkeypatch.setattr(hptune.pipeline._groups, "stack_check", memory_check)


def test_a_cpu_s_stand_in_limit_bounds_the_batch_phase_not_a_stack(demo_path, tmp_path) -> None:
    from hptune.train.target import memory_check, stack_check

    raw = _raw(tmp_path)
    raw["phases"] = {"batch_size": {"memory_limit_gb": 0.05}}
    runner = Runner(config_from_dict(raw))
    assert memory_check(runner.config, runner) is not None  # the batch phase's stand-in GPU
    assert stack_check(runner.config, runner) is None  # a stack trains in the CPU's memory
    assert seeds_per_step(runner, HP.replace(batch_size=64), [0, 1, 2]) == 3
    raw["training"]["device"] = "a100-80gb"  # planned for a GPU: the limit bounds stacks too
    planned = Runner(config_from_dict(raw))
    check = stack_check(planned.config, planned)
    assert check is not None and check.limit_bytes == 0.05 * 2**30


def test_as_many_seeds_train_together_as_the_memory_limit_fits(
    demo_path, tmp_path, monkeypatch
) -> None:
    _bounded_stacks(monkeypatch)
    raw = _raw(tmp_path)
    raw["phases"] = {"batch_size": {"memory_limit_gb": 0.05}}  # 46 MB usable
    runner = Runner(config_from_dict(raw))
    # predicted for the demo model: 10.8 / 19.7 / 28.7 MB for 1 / 2 / 3 seeds at batch 4,
    # 19.3 / 36.8 / 54.2 at batch 8, 36.4 / 70.9 at batch 16
    assert [seeds_per_step(runner, HP.replace(batch_size=b), [0, 1, 2]) for b in (4, 8, 16)] == [
        3, 2, 1]  # fmt: skip
    unbounded = Runner(config_from_dict(_raw(tmp_path)))  # a CPU: no limit
    assert seeds_per_step(unbounded, HP.replace(batch_size=64), [0, 1, 2]) == 3


def test_only_runs_that_can_train_together_do(demo_path, tmp_path, monkeypatch) -> None:
    with pytest.raises(ConfigError, match="cannot train together: backend trainer"):
        config_from_dict(_raw(tmp_path, backend="trainer"))
    with pytest.raises(ConfigError, match="cannot train together: full fine-tuning"):
        config_from_dict({**_raw(tmp_path), "method": {"type": "full"}})
    biased = {"type": "lora", "lora": {"lora_bias": True}}
    with pytest.raises(ConfigError, match="cannot train together: a LoRA bias"):
        config_from_dict({**_raw(tmp_path), "method": biased})
    auto = config_from_dict(_raw(tmp_path, backend="trainer", seeds_together="auto"))
    assert auto.training.seeds_together == "auto"
    from hptune.train.trainer import TrainerRunner

    assert not trains_together(TrainerRunner(auto), [0, 1])
    runner = Runner(config_from_dict(_raw(tmp_path, seeds_together="auto")))
    assert trains_together(runner, [0, 1]) and not trains_together(runner, [0])
    off = Runner(config_from_dict(_raw(tmp_path, seeds_together=False)))
    assert not trains_together(off, [0, 1])
    # float16 (a T4, a V100): one loss scaler for all seeds, so one after the other
    monkeypatch.setattr("hptune.train.together.mixed_precision", lambda: "fp16")
    assert not trains_together(runner, [0, 1])


def test_seeds_out_of_memory_together_train_in_turn(demo_path, tmp_path, monkeypatch) -> None:
    import torch

    from hptune import keys, run

    def too_many(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("hptune.train.together.train_together", too_many)
    raw = _raw(tmp_path, batch_size=8, gradient_accumulation_steps=1, epochs=1)
    raw["phases"] = {"run": ["baseline"]}
    result = run(config_from_dict(raw))
    [trial] = result.study("baseline").trials
    assert trial.user_attrs[keys.STATUS] == "ok" and keys.OOM not in trial.user_attrs
    assert [r["seed"] for r in trial.user_attrs[keys.RUNS]] == [0, 1, 2]


def test_a_run_with_seeds_together_stores_what_one_seed_after_the_other_stores(
    demo_path, tmp_path, monkeypatch
) -> None:
    _bounded_stacks(monkeypatch)  # the 50 MB limit below splits the seeds, as a GPU's would
    # Every stored seed value, status and decision, read with Optuna alone, as
    # scripts/compare_runs.py compares two runs; the epochs phase prunes with seeds together.
    import importlib.util
    import sys
    from pathlib import Path

    import optuna

    from hptune import keys, run

    script = Path(__file__).resolve().parents[2] / "scripts" / "compare_runs.py"
    spec = importlib.util.spec_from_file_location("compare_runs", script)
    assert spec is not None and spec.loader is not None
    compare_runs = importlib.util.module_from_spec(spec)
    sys.modules["compare_runs"] = compare_runs
    spec.loader.exec_module(compare_runs)
    stores = {}
    for together in (False, True):
        raw = _raw(tmp_path / str(together), seeds_together=together, learning_rate=1e-2,
                   batch_size=8, gradient_accumulation_steps=1, epochs=2)  # fmt: skip
        # a 50 MB stand-in GPU fits two of the three seeds at batch 8: [0, 1] together, then 2
        raw["phases"] = {"run": ["baseline", "learning_rate", "epochs"],
                         "learning_rate": {"grid": [1e-3, 1e-2], "extend_edges": 0},
                         "epochs": {"range": [1, 3], "extend_edges": 0},
                         "batch_size": {"memory_limit_gb": 0.05}}  # fmt: skip
        run(config_from_dict(raw))
        stores[together] = compare_runs.read(tmp_path / str(together) / "out" / "hptune.db")
    assert compare_runs.differences(stores[False], stores[True], 1e-3) == []
    url = f"sqlite:///{tmp_path / 'True' / 'out' / 'hptune.db'}"
    trials = [t for s in optuna.get_all_study_summaries(url)
              for t in optuna.load_study(study_name=s.study_name, storage=url).trials]  # fmt: skip
    # (a trial read back from an earlier phase reports its seeds one after the other)
    trained = [t for t in trials if keys.SEED_CURVES in t.user_attrs]
    trained = [t for t in trained if keys.REUSED_FROM not in t.user_attrs]
    assert trained and all(t.user_attrs.get(keys.SEEDS_TOGETHER) for t in trained)
    for trial in trained:  # one curve per seed, as many values as the seed's epochs
        curves = trial.user_attrs[keys.SEED_CURVES]
        runs = trial.user_attrs[keys.RUNS]
        assert [s for s, _ in curves] == [r["seed"] for r in runs] == [0, 1, 2]
        assert [len(v) for _, v in curves] == [len(r["epochs"]) for r in runs]
