"""Run one configuration at two revisions of hptune and compare what they decided.

A refactoring must not change what a run does. This script checks out each revision into a
temporary git worktree, runs ``hptune run -q CONFIG`` there (into a fresh output directory,
one run after the other, never two at once), then reads both storages with Optuna alone (no
hptune code, so either revision's storage reads alike) and compares, study by study and
trial by trial: the parameters, the status, every seed's value, and each phase's decision.

    .venv/bin/python scripts/compare_runs.py --config examples/demo.yaml \\
        --before 3b282e6 --after HEAD

Prints each difference and exits 1 when there is one; 0 and "the same" otherwise. Seed
values are compared to ``--tolerance`` (relative; default 0: bit for bit as stored).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run_at(revision: str, config: Path, workdir: Path) -> Path:
    """Run ``config`` with hptune at ``revision``; the storage file it wrote."""
    finished = workdir / f"out-{revision.replace('/', '_')}" / "finished"
    if finished.exists():  # kept by --keep from an earlier call
        return finished.parent / "hptune.db"
    tree = workdir / f"tree-{revision.replace('/', '_')}"
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), revision],
                   cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    raw = yaml.safe_load(config.read_text())
    out = workdir / f"out-{revision.replace('/', '_')}"
    raw["output_dir"] = str(out)
    raw.pop("storage", None)  # the default: SQLite in the output directory
    copy = workdir / f"{revision.replace('/', '_')}.yaml"
    copy.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    try:
        command = [sys.executable, "-m", "hptune", "run", "-q", str(copy)]
        done = subprocess.run(command, cwd=config.parent, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{revision}: hptune run failed:\n{done.stderr[-3000:]}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                       capture_output=True)  # fmt: skip
    (out / "finished").touch()
    return out / "hptune.db"


def read(storage: Path) -> dict[str, Any]:
    """Each study's trials (parameters, status, seed values) and decision, by Optuna alone."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{storage}"
    studies: dict[str, Any] = {}
    for summary in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        trials = [
            {
                "params": t.params,
                "status": t.user_attrs.get("status"),
                "seed_values": t.user_attrs.get("seed_values"),
            }
            for t in study.trials
        ]
        decision = study.user_attrs.get("hptune.decision") or "{}"  # stored as JSON text
        decision = json.loads(decision) if isinstance(decision, str) else decision
        studies[summary.study_name] = {
            "trials": trials,
            "decision": {k: decision.get(k) for k in ("case", "params")},
        }
    return studies


def differences(before: dict[str, Any], after: dict[str, Any], tolerance: float) -> list[str]:
    """What differs between two runs' studies, in words."""
    found = []
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            found.append(f"{name}: only in the {'after' if name in after else 'before'} run")
            continue
        a, b = before[name], after[name]
        if a["decision"] != b["decision"]:
            found.append(f"{name}: decision {a['decision']} -> {b['decision']}")
        if len(a["trials"]) != len(b["trials"]):
            found.append(f"{name}: {len(a['trials'])} trials -> {len(b['trials'])}")
        for number, (x, y) in enumerate(zip(a["trials"], b["trials"], strict=False)):
            for key in ("params", "status"):
                if x[key] != y[key]:
                    found.append(f"{name}#{number}: {key} {x[key]} -> {y[key]}")
            values_x, values_y = x["seed_values"] or {}, y["seed_values"] or {}
            if values_x.keys() != values_y.keys() or any(
                not math.isclose(values_x[s], values_y[s], rel_tol=tolerance, abs_tol=0.0)
                for s in values_x
            ):
                found.append(f"{name}#{number}: seed values {values_x} -> {values_y}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "demo.yaml")
    parser.add_argument("--before", required=True, help="a git revision")
    parser.add_argument("--after", default="HEAD", help="a git revision (default HEAD)")
    parser.add_argument("--tolerance", type=float, default=0.0)
    parser.add_argument("--json", type=Path, help="write both runs' studies here")
    parser.add_argument("--keep", type=Path,
                        help="run into this folder and keep it; a revision's finished run "
                             "found there is read, not run again")  # fmt: skip
    args = parser.parse_args()
    config = args.config.resolve()
    with tempfile.TemporaryDirectory(prefix="hptune-compare-") as tmp:
        workdir = args.keep.resolve() if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        runs = {rev: read(run_at(rev, config, workdir)) for rev in (args.before, args.after)}
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, sort_keys=True))
    found = differences(runs[args.before], runs[args.after], args.tolerance)
    n_trials = sum(len(s["trials"]) for s in runs[args.after].values())
    print(f"{config.name}: {len(runs[args.after])} studies, {n_trials} trials, "
          f"{args.before} vs {args.after}")  # fmt: skip
    for line in found:
        print("  " + line)
    print("the same" if not found else f"{len(found)} difference(s)")
    raise SystemExit(1 if found else 0)


if __name__ == "__main__":
    main()
