"""The report as a list of blocks, so that HTML and Markdown say exactly the same thing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from hptune._display import (
    DIAGNOSIS_COLUMNS,
    describe_decision,
    diagnosis_cells,
    outcome_cells,
    outcome_columns,
    sorted_outcomes,
)
from hptune.phases import PHASES
from hptune.report._figures import phase_figures
from hptune.stored import count_states

if TYPE_CHECKING:
    from hptune.report._collect import PhaseEvidence, ReportData

__all__ = ["Block", "Code", "Decided", "Figure", "Heading", "Table", "Text", "build_blocks"]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Decided:
    """A phase's decision: the rule that applied, the values fixed, and why."""

    summary: str
    reason: str


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True)
class Figure:
    name: str  # a file name stem, unique in the report
    caption: str
    svg: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Text | Decided | Table | Figure | Code


def build_blocks(data: ReportData) -> list[Block]:
    """Every section of the report, in reading order."""
    blocks: list[Block] = [
        Heading(1, f"hptune report: {data.name}", "top"),
        Text(
            f"Generated {data.generated_at} from {data.storage}. Metric: {data.metric} "
            f"({data.direction}), every trial on seeds {', '.join(map(str, data.seeds))} "
            "(paired: seed s gives every configuration the same data order and initialisation)."
        ),
        *_summary(data),
    ]
    for evidence in data.phases:
        blocks += _phase(evidence, data.metric)
    blocks += _diagnostics(data)
    blocks += _exported(data)
    blocks += _environment(data)
    return blocks


def _summary(data: ReportData) -> list[Block]:
    rows = []
    for p in data.phases:
        trials = ", ".join(f"{n} {state}" for state, n in _counts(p).items()) or "-"
        decision = "-" if p.decision is None else describe_decision(p.decision)
        rows.append((p.phase, p.state, trials, decision))
    blocks: list[Block] = [
        Heading(2, "Summary", "summary"),
        Table(("phase", "state", "trials", "decision"), rows),
    ]
    final = data.final
    if final is not None and final.decision is not None:
        blocks.append(Decided("Final result", final.decision.reason))
    return blocks


def _counts(evidence: PhaseEvidence) -> dict[str, int]:
    return count_states(evidence.trials)


def _phase(evidence: PhaseEvidence, metric: str) -> list[Block]:
    title = PHASES[evidence.phase].title if evidence.phase in PHASES else evidence.phase
    blocks: list[Block] = [Heading(2, f"{title}", evidence.phase)]
    if evidence.state == "pending":
        return [*blocks, Text(f"Not started: study {evidence.study_name} is not in the storage.")]
    if evidence.decision is not None:
        blocks.append(
            Decided(f"Decision {describe_decision(evidence.decision)}", evidence.decision.reason)
        )
    else:
        blocks.append(Text(f"In progress: study {evidence.study_name} has no decision yet."))
    if evidence.outcomes:
        cells = [outcome_cells(o) for o in sorted_outcomes(evidence.outcomes)]
        blocks.append(Table(outcome_columns(metric), cells))
    blocks += _rates_won(evidence)
    for index, (caption, svg) in enumerate(phase_figures(evidence, metric)):
        blocks.append(Figure(f"{evidence.phase}-{index + 1}", caption, svg))
    blocks.append(
        Text(
            f"Study {evidence.study_name}: 'hptune dashboard CONFIG' opens it in "
            "optuna-dashboard with every trial's parameters and values."
        )
    )
    return blocks


def _rates_won(evidence: PhaseEvidence) -> list[Block]:
    """The learning rate each candidate did best at (a phase that re-tunes the rate)."""
    won = evidence.decision.summary.get("rates_won") if evidence.decision is not None else None
    if not won:
        return []
    rows: list[tuple[str, ...]] = [
        (r["candidate"], f"{r['learning_rate']:.3g}", f"x{r['factor']:.3g}", f"{r['mean']:.4g}")
        for r in won
    ]
    columns: tuple[str, ...] = (
        "candidate",
        "its best learning rate",
        "of the incoming",
        "seed mean",
    )
    decided = evidence.decision.params if evidence.decision is not None else {}
    if "epochs" in decided or len({r.get("epochs") for r in won}) > 1:  # spare trials ran
        rows = [(*row[:3], str(r["epochs"]), row[3]) for row, r in zip(rows, won, strict=True)]
        columns = (*columns[:3], "epochs", columns[3])
    return [Text("The rate each candidate won at (best candidate first):"), Table(columns, rows)]


def _diagnostics(data: ReportData) -> list[Block]:
    findings = [(phase, n, d) for phase, n, d in data.diagnoses if d.kind != "healthy"]
    healthy = len(data.diagnoses) - len(findings)
    blocks: list[Block] = [
        Heading(2, "Diagnostics", "diagnostics"),
        Text(
            f"{len(data.diagnoses)} training runs (trial x seed) diagnosed from their curves: "
            f"{healthy} healthy, {len(findings)} with a finding. "
            "'hptune diagnose CONFIG' prints the same with every remedy."
        ),
    ]
    if findings:
        rows = [diagnosis_cells(phase, n, d) for phase, n, d in findings]
        blocks.append(Table(DIAGNOSIS_COLUMNS, rows))
    return blocks


def _exported(data: ReportData) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Exported configuration", "exported")]
    if data.exported is None:
        return [
            *blocks,
            Text(
                "Not yet: a phase has no decision. 'hptune export' works once every phase "
                "has decided."
            ),
        ]
    text = yaml.safe_dump(data.exported, sort_keys=False, allow_unicode=True)
    return [
        *blocks,
        Text(
            "What 'hptune export CONFIG' writes: TrainingArguments keys, the peft LoraConfig "
            "and each phase's evidence."
        ),
        Code(text),
    ]


def _environment(data: ReportData) -> list[Block]:
    env: dict[str, Any] = data.environment
    rows = [
        ("device", str(env.get("device", "not recorded"))),
        ("python", str(env.get("python", "not recorded"))),
        ("platform", str(env.get("platform", "not recorded"))),
        ("training backend", str(env.get("backend", "accelerate"))),
        ("mixed precision", str(env.get("precision", "not recorded"))),
    ]
    rows += [(name, version) for name, version in env.get("versions", {}).items()]
    rows.append(("metric scored on", data.scoring or "not recorded"))
    rows.append(("sacrebleu signature", data.bleu_signature or "not recorded"))
    rows += [(f"fingerprint: {split}", digest) for split, digest in data.fingerprints.items()]
    rows += [(f"examples shared: {pair}", str(n)) for pair, n in data.split_overlaps.items()]
    return [
        Heading(2, "Environment", "environment"),
        Text(
            "Recorded when the first phase started. Split fingerprints are content hashes "
            "of each split's examples: equal fingerprints mean the same data."
        ),
        Table(("what", "value"), rows),
    ]
