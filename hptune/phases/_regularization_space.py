"""The regularization phase's space: the candidates it tries (given, or drawn from its ranges)
and the learning rates each is tried at.

The learning rate is the phase's nuisance hyperparameter (Google's Deep Learning Tuning
Playbook): a schedule, a warmup or a weight decay is compared at its own best rate from a
local set around the incoming one, not at the incoming rate alone (a constant rate wants a
lower one than a linear decay). The candidates form a finite space, so the phase grids it:
every candidate at every rate, once. Drawn candidates come from a scrambled Halton sequence
over the ranges (space-filling, the same for every worker given the sampler seed), each value
rounded to ``RESOLUTION`` significant digits; two draws equal at that resolution are one
candidate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hptune._lazy import stats, transformers

if TYPE_CHECKING:
    from hptune.config import TuneConfig

__all__ = [
    "RESOLUTION",
    "RegularizationSpace",
    "choices",
    "describe",
    "round_significant",
    "same_params",
    "trainer_defaults",
]

#: Significant digits of a drawn weight decay, warmup or searched value.
RESOLUTION = 2
#: The parameters every candidate sets.
BASE_PARAMS = ("weight_decay", "scheduler", "warmup_ratio")


def round_significant(value: float, digits: int = RESOLUTION) -> float:
    """``value`` rounded to ``digits`` significant digits (0 stays 0).

    Args:
        value: A number.
        digits: Significant digits kept.

    Returns:
        The rounded number.
    """
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


@dataclass(frozen=True)
class RegularizationSpace:
    """The ranges and choices the phase's candidates come from.

    Args:
        weight_decay: The weight-decay range, drawn on a log scale.
        warmup_ratio: The warmup-ratio range.
        schedulers: The schedules tried.
        space: More ``TrainingArguments`` keys: a ``(low, high, log)`` range or choices.
        seed: The seed of the drawn candidates' sequence.
    """

    weight_decay: tuple[float, float]
    warmup_ratio: tuple[float, float]
    schedulers: list[str]
    space: dict[str, tuple[float, float, bool] | list[Any]] = field(default_factory=dict)
    seed: int = 0

    @property
    def params(self) -> tuple[str, ...]:
        """The parameters a candidate sets, the searched ``TrainingArguments`` keys last."""
        return (*BASE_PARAMS, *self.space)

    def contains(self, candidate: dict[str, Any]) -> bool:
        """Whether ``candidate`` lies in the ranges and choices."""
        return (
            self.weight_decay[0] <= candidate["weight_decay"] <= self.weight_decay[1]
            and self.warmup_ratio[0] <= candidate["warmup_ratio"] <= self.warmup_ratio[1]
            and candidate["scheduler"] in self.schedulers
            and all(_within(candidate[k], spec) for k, spec in self.space.items())
        )

    def drawn(self, incoming: dict[str, Any], count: int) -> list[dict[str, Any]]:
        """``count`` candidates: the incoming one first when it lies in the space, then one
        per scheduler in turn (the incoming's last), the rest drawn space-filling.

        Args:
            incoming: The incoming configuration's values of ``params``.
            count: How many candidates, the incoming one included.

        Returns:
            Distinct candidates (fewer when the space holds fewer at the resolution).
        """
        chosen = [dict(incoming)] if self.contains(incoming) else []
        order = [s for s in self.schedulers if not chosen or s != incoming["scheduler"]]
        order += [s for s in self.schedulers if s not in order]
        ranges = [k for k, spec in self.space.items() if not isinstance(spec, list)]
        halton = stats.qmc.Halton(d=2 + len(ranges), scramble=True, seed=self.seed)
        for index in range(8 * count):  # enough draws to skip duplicates
            if len(chosen) >= count:
                break
            point = halton.random(1)[0]
            candidate = self._candidate(point, order[index % len(order)], index)
            if not any(same_params(candidate, c, self.params) for c in chosen):
                chosen.append(candidate)
        return chosen

    def _candidate(self, point: Any, scheduler: str, index: int) -> dict[str, Any]:
        """The candidate of one Halton point: its ranges' values, its choices in turn."""
        candidate: dict[str, Any] = {
            "weight_decay": _drawn_value(point[0], (*self.weight_decay, True)),
            "scheduler": scheduler,
            "warmup_ratio": _drawn_value(point[1], (*self.warmup_ratio, False)),
        }
        draws = iter(point[2:])
        for key, spec in self.space.items():
            if isinstance(spec, list):
                candidate[key] = spec[index % len(spec)]
            else:
                candidate[key] = _drawn_value(next(draws), spec)
        return candidate


def choices(points: list[dict[str, Any]], key: str) -> list[Any]:
    """The distinct values of ``key`` over a grid, in order (a categorical's choices).

    Args:
        points: The grid's parameter dicts.
        key: A parameter.

    Returns:
        Its values, each once.
    """
    return list(dict.fromkeys(point[key] for point in points))


def same_params(params: dict[str, Any], other: dict[str, Any], names: tuple[str, ...]) -> bool:
    """Whether two trials' values of ``names`` are equal (floats to 1e-12, relatively).

    Args:
        params: One trial's parameters.
        other: The other's.
        names: The parameters compared.

    Returns:
        True when every one matches.
    """
    return all(
        math.isclose(params[k], other[k], rel_tol=1e-9, abs_tol=1e-12)
        if isinstance(other[k], float) and isinstance(params[k], int | float)
        else params[k] == other[k]
        for k in names
    )


def describe(params: dict[str, Any]) -> str:
    """A candidate in words: ``weight decay 0.01, cosine, warmup 0.1`` and its searched keys.

    Args:
        params: A trial's parameters (or a decision's, ``args`` holding searched keys).

    Returns:
        The words.
    """
    extra = {
        **params.get("args", {}),
        **{k: v for k, v in params.items() if k not in (*BASE_PARAMS, "args", "learning_rate")},
    }
    more = "".join(
        f", {k} {v:.3g}" if isinstance(v, float) else f", {k} {v}" for k, v in extra.items()
    )
    return (
        f"weight decay {params['weight_decay']:.3g}, {params['scheduler']}, "
        f"warmup {params['warmup_ratio']:.3g}{more}"
    )


def _lerp(share: float, low: float, high: float) -> float:
    return low + share * (high - low)


def _drawn_value(share: float, spec: tuple[float, float, bool]) -> Any:
    share = float(share)  # a numpy scalar would reach the stored parameters
    low, high, log = spec
    value = (
        math.exp(_lerp(share, math.log(low), math.log(high))) if log else _lerp(share, low, high)
    )
    if isinstance(low, int) and isinstance(high, int):
        return min(max(round(value), low), high)
    return round_significant(value)


def _within(value: Any, spec: tuple[float, float, bool] | list[Any]) -> bool:
    if isinstance(spec, list):
        return value in spec
    return isinstance(value, int | float) and spec[0] <= value <= spec[1]


def trainer_defaults(config: TuneConfig, keys: list[str]) -> dict[str, Any]:
    """Each key's value in ``training.args``, else the installed Trainer's default."""
    if not keys:
        return {}
    fields = {f.name: f.default for f in dataclasses.fields(transformers.TrainingArguments)}
    return {k: config.training.args.get(k, fields.get(k)) for k in keys}
