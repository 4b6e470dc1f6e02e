"""The report's plots, drawn with matplotlib (no display needed) to standalone SVG text."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from hptune._display import describe_params
from hptune._lazy import matplotlib, mpl_figure, ticker
from hptune.keys import TrialStatus
from hptune.phases import PHASES
from hptune.seeds import summarize

if TYPE_CHECKING:
    from matplotlib import figure as mpl_figure
    from matplotlib import ticker
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from hptune.phases import TrialOutcome
    from hptune.report._collect import PhaseEvidence

__all__ = ["batch_figure", "curves_figure", "final_figure", "param_figure", "phase_figures"]

P = ParamSpec("P")
R = TypeVar("R")

_DIVERGED = "#d62728"
_PRUNED = "#7f7f7f"
_LOG_PARAMS = {"learning_rate", "weight_decay", "lora_r"}
_LABELS = {
    "learning_rate": "learning rate",
    "batch_size": "batch size (per device)",
    "epochs": "epochs",
    "lora_r": "LoRA rank",
    "weight_decay": "weight decay",
    "eval_loss": "validation loss",
    "bleu": "validation BLEU",
    "chrf": "validation chrF",
    "exact_match": "validation exact match",
    "rouge_l": "validation ROUGE-L",
}


def _figure(n_panels: int, *, height: float = 3.6) -> tuple[Figure, list[Axes]]:
    # Sized to be read at 100% zoom on a 1200 px page: one panel ~770 px wide, two ~1080 px.
    figure = mpl_figure.Figure(figsize=(5.6 * n_panels if n_panels > 1 else 8.0, height), dpi=100)
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    return figure, list(axes)


# Text stays text in the SVG (searchable, crisp at any zoom); the page supplies the font.
# A fixed id salt and no date: the same run gives the same SVG bytes (diffable, cacheable).
_STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "hptune",
    "font.size": 10,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
}


def _styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Draw with the report's style, leaving the caller's matplotlib settings untouched."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]
            return draw(*args, **kwargs)

    return wrapper


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: inlined in HTML


def _label(name: str) -> str:
    if name not in _LABELS and ":" in name:  # the user's own metric, "module:function"
        return f"validation {name}"
    return _LABELS.get(name, name.replace("_", " "))


def _describe(o: TrialOutcome) -> str:
    """``#3 learning_rate=0.005 (ok)``; just ``#3 (ok)`` when the parameters would crowd the
    plot out (several parameters): the phase's table beside the plot has them."""
    params = describe_params(o.params)
    if len(params) > 32:
        return f"#{o.number} ({o.status})"
    return f"#{o.number} {params} ({o.status})"


@_styled
def curves_figure(evidence: PhaseEvidence, metric: str) -> str | None:
    """Train and validation curves of every seed of every trial; pruned and diverged marked."""
    panels = ["train_loss", "eval_loss"] + (["score"] if metric != "eval_loss" else [])
    figure, axes = _figure(len(panels))
    drawn = False
    colors = _colors(len(evidence.outcomes))
    for color, outcome in zip(
        colors, sorted(evidence.outcomes, key=lambda o: o.number), strict=True
    ):
        runs = evidence.runs(outcome.number)
        style = {TrialStatus.PRUNED: "--", TrialStatus.DIVERGED: "-"}.get(outcome.status, "-")
        if outcome.status == TrialStatus.DIVERGED:
            color = _DIVERGED
        for index, run in enumerate(runs):
            epochs = run.get("epochs", [])
            if not epochs:
                continue
            drawn = True
            xs = [e["epoch"] for e in epochs]
            for ax, key in zip(axes, panels, strict=True):
                ys = [_finite(e.get(key)) for e in epochs]
                label = _describe(outcome) if index == 0 else None
                ax.plot(
                    xs,
                    ys,
                    style,
                    marker="o",
                    markersize=3 if len(xs) > 1 else 7,  # a one-epoch run is a dot
                    color=color,
                    alpha=0.8,
                    linewidth=1.2,
                    label=label,
                )
                _mark_end(ax, outcome.status, xs, ys, color)
    if not drawn:
        return None
    last_epoch = max(
        e["epoch"]
        for o in evidence.outcomes
        for r in evidence.runs(o.number)
        for e in r.get("epochs", [])
    )
    for ax, key in zip(axes, panels, strict=True):
        ax.set_xlabel("epoch")
        named = {"train_loss": "training loss", "score": _label(metric)}
        ax.set_ylabel(named.get(key, _label(key)))
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(0.5, last_epoch + 0.5)
        ax.grid(alpha=0.3)
    axes[-1].legend(loc="best", ncols=1 + len(evidence.outcomes) // 8)
    figure.suptitle(
        f"{evidence.phase}: curves per trial (one line per seed; dashed = pruned, "
        "red = diverged, x = stopped)",
        fontsize=10,
    )
    return _svg(figure)


def _mark_end(ax: Axes, status: str, xs: list[int], ys: list[float], color: str) -> None:
    if status not in (TrialStatus.PRUNED, TrialStatus.DIVERGED):
        return
    finite = [(x, y) for x, y in zip(xs, ys, strict=True) if not math.isnan(y)]
    if finite:
        marker = "X" if status == TrialStatus.DIVERGED else "x"
        ax.plot(*finite[-1], marker, color=color, markersize=8)


def _finite(value: Any) -> float:
    if value is None or not math.isfinite(float(value)):
        return math.nan
    return float(value)


def _colors(n: int) -> list[Any]:
    """One colour per trial, never the red that marks a diverged trial."""
    if n <= 9:
        palette = [
            matplotlib.colormaps["tab10"](i) for i in range(10) if i != 3
        ]  # 3 is tab10's red
        return palette[:n]
    viridis = matplotlib.colormaps["viridis"]
    return [viridis(i / max(n - 1, 1)) for i in range(n)]


@_styled
def param_figure(
    evidence: PhaseEvidence, param: str, metric: str, *, chosen: Any = None, ax: Axes | None = None
) -> str | None:
    """``param`` against the metric: each seed's value, and the mean with its 95% interval."""
    outcomes = [o for o in evidence.outcomes if param in o.params]
    if not outcomes:
        return None
    figure = None
    if ax is None:
        figure, (ax,) = _figure(1)
    finite = [v for o in outcomes for v in o.seed_values.values()]
    top = max(finite) if finite else 1.0
    for o in outcomes:
        x = o.params[param]
        if o.seed_values:
            values = list(o.seed_values.values())
            s = summarize(values)
            ax.plot([x] * len(values), values, ".", color="#1f77b4", alpha=0.45)
            low = s.mean - (s.ci_low if s.ci_low is not None else s.mean)
            high = (s.ci_high if s.ci_high is not None else s.mean) - s.mean
            face = "#1f77b4" if o.status == TrialStatus.OK else "white"
            ax.errorbar(
                [x],
                [s.mean],
                yerr=[[low], [high]],
                fmt="o",
                color="#1f77b4",
                markerfacecolor=face,
                capsize=4,
            )
        else:
            color = _DIVERGED if o.status in (TrialStatus.DIVERGED, TrialStatus.OOM) else _PRUNED
            ax.plot([x], [top], "X", color=color, markersize=9)
            ax.annotate(
                o.status,
                (x, top),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                color=color,
                fontsize=8,
            )
    if chosen is not None:
        ax.axvline(chosen, color="#2ca02c", linestyle=":", linewidth=1.5, label="chosen")
        ax.legend(loc="best")
    if param in _LOG_PARAMS:
        ax.set_xscale("log")
    if param == "batch_size":
        _batch_axis(ax, [o.params[param] for o in outcomes])
    ax.set_xlabel(_label(param))
    ax.set_ylabel(f"{_label(metric)} (best epoch)")
    ax.set_title("each seed (dots), mean and 95% interval")
    ax.grid(alpha=0.3)
    return None if figure is None else _svg(figure)


@_styled
def batch_figure(evidence: PhaseEvidence, metric: str, *, chosen: Any = None) -> str | None:
    """Batch size against throughput (examples/s) and against the metric; OOM batches marked."""
    outcomes = [o for o in evidence.outcomes if "batch_size" in o.params]
    if not outcomes:
        return None
    figure, (speed_ax, metric_ax) = _figure(2)
    fast = sorted(
        (o.params["batch_size"], o.examples_per_second) for o in outcomes if o.examples_per_second
    )
    speed_ax.plot([b for b, _ in fast], [speed for _, speed in fast], "o-", color="#ff7f0e")
    for o in outcomes:
        if o.status == TrialStatus.OOM:
            speed_ax.plot([o.params["batch_size"]], [0], "X", color=_DIVERGED, markersize=9)
            speed_ax.annotate(
                "out of memory",
                (o.params["batch_size"], 0),
                ha="center",
                textcoords="offset points",
                xytext=(0, 7),
                color=_DIVERGED,
                fontsize=8,
            )
    _batch_axis(speed_ax, [o.params["batch_size"] for o in outcomes])
    speed_ax.set_xlabel(_label("batch_size"))
    speed_ax.set_ylabel("training examples / s")
    speed_ax.set_title("throughput (mean over seeds)")
    speed_ax.set_ylim(bottom=0)
    speed_ax.grid(alpha=0.3)
    param_figure(evidence, "batch_size", metric, chosen=chosen, ax=metric_ax)
    return _svg(figure)


def _batch_axis(ax: Axes, batches: list[int]) -> None:
    """A log-2 axis labelled with the batch sizes themselves (4, 8, 16, not 2^2...)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(batches)))
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


@_styled
def final_figure(evidence: PhaseEvidence, metric: str) -> str | None:
    """The chosen configuration on each seed: validation (decided on) and test (reported)."""
    outcome = next((o for o in evidence.outcomes if o.seed_values), None)
    if outcome is None:
        return None
    figure, (ax,) = _figure(1)
    seeds = sorted(outcome.seed_values)
    ax.plot(seeds, [outcome.seed_values[s] for s in seeds], "o-", label="validation")
    if outcome.test_values:
        tested = sorted(outcome.test_values)
        ax.plot(
            tested, [outcome.test_values[s] for s in tested], "s--", label="test (reported only)"
        )
    ax.set_xticks(seeds)
    ax.set_xlabel("seed")
    ax.set_ylabel(f"{_label(metric).removeprefix('validation ')} at the best validation epoch")
    ax.set_title("chosen configuration, per seed")
    ax.legend()
    ax.grid(alpha=0.3)
    return _svg(figure)


def phase_figures(evidence: PhaseEvidence, metric: str) -> list[tuple[str, str]]:
    """The plots of one phase, as ``(caption, svg)`` pairs."""
    figures: list[tuple[str, str | None]] = []
    chosen = {} if evidence.decision is None else evidence.decision.params
    if evidence.phase == "batch_size":
        svg = batch_figure(evidence, metric, chosen=chosen.get("batch_size"))
        figures.append(("Batch size against throughput and the metric", svg))
    elif evidence.phase in PHASES and PHASES[evidence.phase].params:
        param = PHASES[evidence.phase].params[0]  # the parameter it varies first
        svg = param_figure(evidence, param, metric, chosen=chosen.get(param))
        figures.append((f"{_label(param)[:1].upper() + _label(param)[1:]} against the metric", svg))
    elif evidence.phase == "final":
        figures.append(("Validation and test per seed", final_figure(evidence, metric)))
    caption = "Epoch curves per trial" if evidence.phase == "epochs" else "Learning curves"
    figures.append((caption, curves_figure(evidence, metric)))
    return [(c, svg) for c, svg in figures if svg is not None]
