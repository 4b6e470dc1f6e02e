"""One tuning run's storage in a few lines: wall time, seed-epochs trained, each phase's
decision (with the rate each regularization candidate won at), the final test values.

    .venv/bin/hptune run examples/demo.yaml
    .venv/bin/python benchmarks/demo_summary.py sqlite:///hptune-output/demo/hptune.db

It reads the storage with Optuna alone (the keys hptune stores, ``hptune.keys``), so two runs
of different hptune versions can be put side by side. Seed-epochs count the epochs each
trial's runs trained (a trial read back from an earlier phase trained none).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import optuna

from hptune import keys


def summary(url: str) -> dict[str, Any]:
    """The run stored at ``url``, phase by phase."""
    out: dict[str, Any] = {"phases": {}}
    starts, ends, trained = [], [], 0
    for stored in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=stored.study_name, storage=url)
        phase = stored.study_name.split(".", 1)[1]
        decision = study.user_attrs.get(keys.DECISION) or {}
        decision = json.loads(decision) if isinstance(decision, str) else decision
        row: dict[str, Any] = {
            "params": decision.get("params"),
            "case": decision.get("case"),
            "rates_won": (decision.get("summary") or {}).get("rates_won"),
            "trials": len(study.trials),
            "seed_epochs": 0,
        }
        for trial in study.trials:
            starts += [trial.datetime_start] if trial.datetime_start else []
            ends += [trial.datetime_complete] if trial.datetime_complete else []
            if keys.REUSED_FROM not in trial.user_attrs:
                runs = trial.user_attrs.get(keys.RUNS, [])
                row["seed_epochs"] += sum(
                    len(r["epochs"]) - r.get("resumed_after", 0) for r in runs
                )
            if phase == "final":
                row["test_values"] = trial.user_attrs.get(keys.TEST_VALUES)
        trained += row["seed_epochs"]
        out["phases"][phase] = row
    out["wall_minutes"] = round((max(ends) - min(starts)).total_seconds() / 60, 1)
    out["seed_epochs"] = trained
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storage", help="the run's storage URL (hptune status shows it)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = summary(args.storage)
    print(f"wall time {result['wall_minutes']} min, {result['seed_epochs']} seed-epochs")
    for phase, row in result["phases"].items():
        print(f"{phase}: {row['case']} {row['params']} ({row['seed_epochs']} seed-epochs)")
        for won in row["rates_won"] or []:
            print(f"  {won['candidate']}: rate {won['learning_rate']:.3g} "
                  f"(x{won['factor']:.3g}), mean {won['mean']:.4f}")  # fmt: skip
        if row.get("test_values"):
            values = ", ".join(f"{v:.4f}" for v in row["test_values"].values())
            print(f"  test values by seed: {values}")


if __name__ == "__main__":
    main()
