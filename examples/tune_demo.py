"""The demo through Python: the same run as `hptune run examples/demo.yaml`, built in code.

Run with `python examples/tune_demo.py`. The configuration mirrors demo.yaml: tiny models want
learning rates about 100 times those of 7B models, so the grid and the baseline rate are the
method's values x100.
"""

from pathlib import Path

import hptune

config = hptune.TuneConfig(
    name="demo_py",
    model={"path": "demo://model"},
    method={"type": "lora", "r": 8, "alpha": 16, "target_modules": "all-linear"},
    data={
        "train": "demo://data/train.jsonl",
        "validation": "demo://data/validation.jsonl",
        "test": "demo://data/test.jsonl",
        "template": "Question: {question}\nAnswer: ",
        "max_length": 96,
    },
    objective={"metric": "eval_loss", "seeds": 3, "eval_samples": 48, "max_new_tokens": 16},
    training={"learning_rate": 1e-2, "batch_size": 4, "gradient_accumulation_steps": 8},
    phases={
        "learning_rate": {"grid": [1e-3, 5e-3, 1e-2, 5e-2]},
        "batch_size": {"memory_limit_gb": 0.05, "n_trials": 3},
        "regularization": {"n_trials": 8},
    },
    guardrails={"ignore": ["high_learning_rate"]},  # tiny model: rates x100 (see above)
    output_dir=str(Path(__file__).resolve().parent.parent / "hptune-output" / "demo_py"),
)

if __name__ == "__main__":
    result = hptune.run(config)
    print("chosen configuration:", result.hparams.to_dict())
    for phase in result.phases:
        print(f"{phase.phase}: {phase.decision.case}: {phase.decision.reason}")
