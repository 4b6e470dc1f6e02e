"""The objective section: the validation metric trials are scored on, its direction, and
the paired seeds."""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from hptune.config._base import _Strict
from hptune.seeds import resolve_margin

__all__ = ["BUILTIN_METRICS", "ObjectiveConfig"]

#: The metrics hptune computes itself: the validation loss, and text metrics on answers
#: generated greedily (BLEU and chrF via sacrebleu, exact match, ROUGE-L).
BUILTIN_METRICS = ("eval_loss", "bleu", "chrf", "exact_match", "rouge_l")


#: Names other libraries give the built-in metrics (evaluate, sacrebleu, the Trainer).
_METRIC_NAMES = {
    "rougel": "rouge_l",
    "rouge": "rouge_l",
    "loss": "eval_loss",
    "sacrebleu": "bleu",
    "em": "exact_match",
    "exact": "exact_match",
}


def _close_metric(name: str) -> str | None:
    """The built-in metric ``name`` most likely means (case, dashes and underscores aside)."""

    def bare(text: str) -> str:
        return text.lower().replace("-", "").replace("_", "")

    if bare(name) in _METRIC_NAMES:
        return _METRIC_NAMES[bare(name)]
    by_bare = {bare(m): m for m in BUILTIN_METRICS}
    close = difflib.get_close_matches(bare(name), list(by_bare), n=1, cutoff=0.7)
    return by_bare[close[0]] if close else None


def _builtin_direction(metric: Any) -> Literal["minimize", "maximize"]:
    return "minimize" if metric == "eval_loss" else "maximize"


class ObjectiveConfig(_Strict):
    """What trials are scored on: a validation metric, over several paired seeds."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, arbitrary_types_allowed=True
    )

    #: ``eval_loss`` (minimized), ``bleu``, ``chrf``, ``exact_match``, ``rouge_l`` (maximized,
    #: 0-100), or your function as ``"module:function"`` (importable from the configuration's
    #: folder or ``sys.path``; from Python, the function itself), called as
    #: ``fn(predictions: list[str], references: list[str]) -> float``.
    metric: Any = "eval_loss"
    #: ``maximize`` or ``minimize``: required for your own metric, fixed for the built-in ones
    #: (read the resolved one as ``goal``).
    direction: Literal["minimize", "maximize"] | None = None
    #: Paired seeds per configuration: a count N (seeds 0 to N-1) or a list of seeds.
    seeds: int | list[int] = 3
    #: Validation examples a text metric scores each epoch: a seeded random subset, the same
    #: for every trial (the test split is scored whole). ``bleu_samples`` is an older name.
    eval_samples: int = Field(
        64, gt=0, validation_alias=AliasChoices("eval_samples", "bleu_samples")
    )
    #: The longest answer generated for a text metric, in tokens.
    max_new_tokens: int = Field(32, gt=0)
    #: The largest difference in the metric that does not matter: candidates whose paired
    #: difference is shown to be within it are equivalent, and only then does the cheaper
    #: one win (fewer epochs, the faster batch). In the metric's units (``0.02``) or as a
    #: share of the best candidate's value (``"2%"``). Default: the paired noise of one seed
    #: (the seed model's, on the phase's candidates), at most one seed standard deviation;
    #: every decision states the seeds equivalence needs at that margin.
    equivalence_margin: float | str | None = None
    #: Racing: when the best configuration and a contender are neither equivalent nor told
    #: apart, both get more paired seeds, one at a time, up to this many in all (no racing
    #: when it is not above the number of seeds).
    max_seeds: int = Field(5, ge=1)
    #: Where ``"module:function"`` is imported from first: the configuration file's folder.
    _search_dir: str | None = PrivateAttr(None)

    @field_validator("equivalence_margin")
    @classmethod
    def _margin(cls, value: float | str | None) -> float | str | None:
        resolve_margin(value, 1.0)  # a negative number or a bad percentage says how to fix it
        return value

    @field_validator("metric")
    @classmethod
    def _metric_known(cls, metric: Any) -> Any:
        if callable(metric):
            return metric
        if not isinstance(metric, str):
            raise ValueError(
                f"must be a metric name or 'module:function', not a {type(metric).__name__}"
            )
        if metric in BUILTIN_METRICS:
            return metric
        module, _, function = metric.partition(":")
        names = [*module.split("."), function]
        if not function or not all(n.isidentifier() for n in names):
            close = _close_metric(metric)
            hint = f"did you mean {close!r}? " if close else ""
            raise ValueError(
                f"unknown metric; {hint}use one of {', '.join(BUILTIN_METRICS)}, or your "
                "function as 'module:function' (e.g. 'my_metrics:f1')"
            )
        return metric

    @model_validator(mode="after")
    def _direction_given(self) -> ObjectiveConfig:
        builtin = self.metric in BUILTIN_METRICS if isinstance(self.metric, str) else False
        if not builtin and self.direction is None:
            raise ValueError(
                "objective.direction is required with your own metric: 'maximize' (higher is "
                "better, like accuracy) or 'minimize' (like an error rate)"
            )
        if builtin and self.direction not in (None, _builtin_direction(self.metric)):
            raise ValueError(
                f"objective.direction: {self.metric} is always "
                f"{_builtin_direction(self.metric)}d; leave direction out"
            )
        return self

    @property
    def goal(self) -> Literal["minimize", "maximize"]:
        """The metric's direction: fixed for a built-in metric, else ``direction``."""
        if self.direction is not None:
            return self.direction
        return _builtin_direction(self.metric)

    @property
    def metric_name(self) -> str:
        """The metric as stored and shown: its name, ``module:function``, or the callable's."""
        if callable(self.metric):
            return f"{self.metric.__module__}:{self.metric.__qualname__}"
        return str(self.metric)

    @property
    def search_dir(self) -> str | None:
        """The folder ``"module:function"`` is imported from first (the configuration's)."""
        return self._search_dir

    @property
    def is_text_metric(self) -> bool:
        """Scored on generated answers (anything but the validation loss)."""
        return self.metric != "eval_loss"

    @field_validator("seeds")
    @classmethod
    def _seeds_valid(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and seeds < 1:
            raise ValueError("needs at least one seed (three are recommended)")
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError("the seed list must be non-empty and without repeats")
        return seeds

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def racing_seeds(self) -> list[int]:
        """The seeds racing may add, in order: the next integers not already in use."""
        used = self.seed_list
        extra: list[int] = []
        candidate = max(used) + 1
        while len(used) + len(extra) < self.max_seeds:
            extra.append(candidate)
            candidate += 1
        return extra
