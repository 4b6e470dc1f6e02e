"""Trial overhead: seconds from a trial's start to its first training step, and from one
trial's end to the next one's start, for hptune's learning-rate phase (which keeps the loaded
base model and the tokenized data across trials and seeds for LoRA) and for Hugging Face
``Trainer.hyperparameter_search`` with its Optuna backend (which builds the model through
``model_init`` in every trial), on the demo model and on a larger model built the same way.

    .venv/bin/python benchmarks/trial_overhead.py [--trials 4] [--quick]

Both train the same LoRA job (1 epoch, batch 16, the same examples) and evaluate once per
epoch; only the time around the training steps differs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.yaml"
RATES = [1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2]


def _config(model_path: str, n_trials: int, examples: int, out: Path) -> Any:
    from hptune.config import load_config

    raw = yaml.safe_load(DEMO.read_text())
    raw["name"] = "overhead"
    raw["model"]["path"] = model_path
    raw["objective"].update({"seeds": 1, "eval_samples": 1})
    raw["training"].update({"batch_size": 16, "gradient_accumulation_steps": 1, "epochs": 1,
                            "max_train_examples": examples, "checkpoints": False})  # fmt: skip
    # n_trials trials exactly (timed against peers with as many): no rate past the edges
    raw["phases"] = {"run": ["learning_rate"],
                     "learning_rate": {"grid": RATES[:n_trials], "extend_edges": 0}}  # fmt: skip
    raw["guardrails"] = {"ignore": ["high_learning_rate", "single_seed"]}
    raw["output_dir"] = str(out)
    path = out / "overhead.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def measure_hptune(config: Any, backend: str = "accelerate") -> tuple[list[float], list[float]]:
    from hptune.pipeline import resolve_hparams, run_phase
    from hptune.train import Runner

    if backend != "accelerate":
        return measure_backend(config, backend)
    marks: list[tuple[str, float]] = []

    class Timed(Runner):
        def train(self, *args: Any, **kwargs: Any) -> Any:
            marks.append(("start", time.perf_counter()))
            self._first = True
            try:
                return super().train(*args, **kwargs)
            finally:
                marks.append(("end", time.perf_counter()))

        def step_loss(self, model: Any, batch: Any, epoch: int) -> Any:
            if self._first:
                marks.append(("step", time.perf_counter()))
                self._first = False
            return super().step_loss(model, batch, epoch)

    runner = Timed(config)
    base, _ = resolve_hparams(config, runner.data.n_train)
    run_phase(config, "learning_rate", base, runner=runner)
    return _gaps(marks)


def measure_backend(config: Any, backend: str) -> tuple[list[float], list[float]]:
    """hptune's learning-rate phase with each seed trained by a Trainer (``trainer``) or
    SFTTrainer (``sft``): the first step is marked by a callback on the Trainer built."""
    from transformers import TrainerCallback

    from hptune.pipeline import resolve_hparams, run_phase
    from hptune.train.backends import RUNNERS

    marks: list[tuple[str, float]] = []

    class FirstStep(TrainerCallback):
        def __init__(self) -> None:
            self.first = True

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            if self.first:
                marks.append(("step", time.perf_counter()))
                self.first = False

    class Timed(RUNNERS[backend]):  # type: ignore[misc,valid-type]
        def train(self, *args: Any, **kwargs: Any) -> Any:
            marks.append(("start", time.perf_counter()))
            try:
                return super().train(*args, **kwargs)
            finally:
                marks.append(("end", time.perf_counter()))

        def build_trainer(self, run: Any) -> Any:
            trainer = super().build_trainer(run)
            trainer.add_callback(FirstStep())
            return trainer

    training = config.training.model_copy(update={"backend": backend})
    runner = Timed(config.model_copy(update={"training": training}))
    base, _ = resolve_hparams(config, runner.data.n_train)
    run_phase(runner.config, "learning_rate", base, runner=runner)
    return _gaps(marks)


def measure_trainer(config: Any) -> tuple[list[float], list[float]]:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from hptune.train import Runner
    from hptune.train.model import load_model

    runner = Runner(config)  # the same tokenized data
    marks: list[tuple[str, float]] = []

    class Marks(TrainerCallback):
        first = True

        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            self.first = True

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            if self.first:
                marks.append(("step", time.perf_counter()))
                self.first = False

        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            marks.append(("end", time.perf_counter()))

    def hp_space(trial: Any) -> dict[str, Any]:
        marks.append(("start", time.perf_counter()))
        grid = config.phases.learning_rate.grid
        return {"learning_rate": trial.suggest_categorical("learning_rate", grid)}

    collate = DataCollatorForSeq2Seq(runner.tokenizer, padding=True, label_pad_token_id=-100)
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="hptune-bench-hpsearch-"),
        per_device_train_batch_size=16, num_train_epochs=1, eval_strategy="epoch",
        save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), seed=0,
    )  # fmt: skip
    trainer = Trainer(
        model_init=lambda trial=None: load_model(config.model, config.method),
        args=args,
        train_dataset=runner.data.train,
        eval_dataset=runner.data.validation,
        data_collator=collate,
        callbacks=[Marks()],
    )
    trainer.hyperparameter_search(direction="minimize", backend="optuna", hp_space=hp_space,
                                  n_trials=len(config.phases.learning_rate.grid))  # fmt: skip
    return _gaps(marks)


def _gaps(marks: list[tuple[str, float]]) -> tuple[list[float], list[float]]:
    """(start -> first step per trial, end -> next start between trials)."""
    to_first, between, start, end = [], [], None, None
    for kind, at in marks:
        if kind == "start":
            if end is not None:
                between.append(at - end)
            start = at
        elif kind == "step" and start is not None:
            to_first.append(at - start)
            start = None
        elif kind == "end":
            end = at
    return to_first, between


def _larger_model(out: Path) -> tuple[str, str]:
    from transformers import AutoTokenizer

    from hptune.demo import ensure_demo
    from hptune.demo._model import build_model

    directory = out / "larger-model"
    tokenizer = AutoTokenizer.from_pretrained(ensure_demo() / "model")
    build_model(directory, tokenizer, seed=0, hidden_size=512, layers=8, steps=1)
    from transformers import AutoModelForCausalLM

    n = AutoModelForCausalLM.from_pretrained(directory).num_parameters()
    return f"larger ({n / 1e6:.0f}M, hidden 512, 8 layers)", str(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2 trials, the demo model only")
    args = parser.parse_args()
    trials = 2 if args.quick else args.trials
    out = Path(tempfile.mkdtemp(prefix="hptune-bench-overhead-"))
    models = {"demo (0.5M)": "demo://model"}
    if not args.quick:
        label, path = _larger_model(out)
        models[label] = path
    print(f"LoRA, {trials} trials of 1 epoch (64 examples). Seconds from a trial's start to")
    print("its first training step (the first trial; later ones: median), and between trials")
    print(f"{'model':<36} {'search':<30} {'first trial':>12} {'later trials':>13} "
          f"{'between':>8}")  # fmt: skip
    for label, path in models.items():
        searches = (("hptune", lambda c: measure_hptune(c)),
                    ("hptune, trainer backend", lambda c: measure_hptune(c, "trainer")),
                    ("hptune, sft backend", lambda c: measure_hptune(c, "sft")),
                    ("Trainer.hyperparameter_search", measure_trainer))  # fmt: skip
        for index, (name, measure) in enumerate(searches):
            config = _config(path, trials, 64, out / f"search-{index}-{len(label)}")
            to_first, between = measure(config)
            print(f"{label:<36} {name:<30} {to_first[0]:>12.3f} {_median(to_first[1:]):>13} "
                  f"{_median(between):>8}")  # fmt: skip


def _median(values: list[float]) -> str:
    return "-" if not values else f"{statistics.median(values):.3f}"


if __name__ == "__main__":
    main()
