"""A phase's setup, recorded on its study: trials from another setup are never mixed in."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from hptune import keys
from hptune.config._together import trains_together
from hptune.exceptions import ConfigError
from hptune.plan import scoring
from hptune.train.data import chat_template_text
from hptune.train.environment import describe_environment
from hptune.train.metrics import bleu_signature
from hptune.train.model import resolved_dtype

if TYPE_CHECKING:
    import optuna

    from hptune.config import TuneConfig
    from hptune.hparams import HParams
    from hptune.phases import Phase
    from hptune.train import RunnerBase

__all__ = ["check_same_setup"]

#: Setup keys that studies started by an earlier hptune lack: not compared there, so such a
#: run still resumes.
_RECORDED_LATER = frozenset({"preparation", "seeds_together"})


def _digest(text: str | None) -> str | None:
    """The template's content hash: the same template from another path is the same setup,
    an edited one is not."""
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]


def _shared(value: Any, other: Any) -> Any:
    """``value`` restricted to the keys ``other`` has too, for the preparation mapping: a
    setting an earlier hptune did not record (or recorded under an older name) is not compared,
    so its runs still resume."""
    if isinstance(value, dict) and isinstance(other, dict) and "max_length" in value:
        return {k: v for k, v in value.items() if k in other}
    return value


def check_same_setup(
    study: optuna.Study,
    phase: Phase,
    base: HParams,
    config: TuneConfig,
    runner: RunnerBase,
    budget_fit: dict[str, Any] | None = None,
) -> None:
    """Record what the phase starts from; refuse to mix trials from another setup.

    The first worker records the setup with the environment, the data's checks and the
    budget fit; a later run or worker must start from the same base configuration, metric,
    model, method and data. Seeds a budget cut or gave back (one list extends the other)
    are accepted where no trials would mix: a decided phase is kept as decided, and a phase
    that has trained nothing yet takes the new seeds.

    Args:
        study: The phase's study.
        phase: The phase.
        base: The configuration it starts from.
        config: The run's (fitted) configuration.
        runner: The trainer (its data and backend).
        budget_fit: The run's budget fit (``hptune.budget.BudgetFit.to_stored``), if any.

    Raises:
        ConfigError: The study was started with another setup, or trained on other seeds
            and is not decided.
    """
    setup = _setup(phase, base, config, runner, budget_fit)
    stored = study.user_attrs.get(keys.SETUP)
    if stored is None:
        _record_first(study, setup, config, runner)
        return
    changed = _changed(stored, setup)
    if changed == ["seeds"]:  # a budget cut seeds, or gave them back
        if keys.DECISION in study.user_attrs:
            return  # decided on its own seeds: kept, read back as decided
        if any(keys.RUNS in t.user_attrs for t in study.get_trials(deepcopy=False)):
            raise ConfigError(
                f"phase {phase.name!r} of this run trained on seeds {stored['seeds']}, and "
                f"this configuration (its budget) gives seeds {setup['seeds']}; its trials "
                "cannot be mixed. Finish the phase with the budget it started under, or give "
                "the run a new name (the 'name' key)."
            )
    if changed in ([], ["seeds"]):  # the phase goes on under this fit, on these seeds
        fit_changed = stored.get(keys.SETUP_BUDGET_FIT) != setup.get(keys.SETUP_BUDGET_FIT)
        if changed or fit_changed:
            kept = ("seeds", keys.SETUP_BUDGET_FIT)
            study.set_user_attr(keys.SETUP, {**stored, **{k: setup[k] for k in kept if k in setup}})
        return
    raise ConfigError(
        f"study {study.study_name!r} in {config.storage_display!r} was run with another "
        f"{', '.join(changed)}; its trials cannot be mixed with this configuration's. "
        "Give the run a new name (the 'name' key) or a new storage."
    )


def _changed(stored: dict[str, Any], setup: dict[str, Any]) -> list[str]:
    """What differs between the stored setup and this one, sorted; the budget fit is never
    compared (a later start may refit it), nor what an earlier hptune did not record.
    ``["seeds"]`` alone only when one seed list extends the other (a budget's cut)."""
    changed = sorted(
        k
        for k in setup
        if k != keys.SETUP_BUDGET_FIT
        and (k in stored or k not in _RECORDED_LATER)
        and json.dumps(_shared(stored.get(k), setup[k]))
        != json.dumps(_shared(setup[k], stored.get(k)))
    )
    old, new = stored.get("seeds", []), setup["seeds"]
    if changed == ["seeds"] and old[: len(new)] != new and new[: len(old)] != old:
        return ["seeds (not a budget's cut: one list does not extend the other)"]
    return changed


def _setup(
    phase: Phase,
    base: HParams,
    config: TuneConfig,
    runner: RunnerBase,
    budget_fit: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the phase starts from, as its setup record."""
    setup: dict[str, Any] = {
        "phase": phase.name,
        "base_hparams": base.to_dict(),
        "metric": config.objective.metric_name,
        "seeds": config.objective.seed_list,
        "model": config.model.path,
        "method": config.method.model_dump(),
        "training": runner.trains_as,
        "fingerprints": runner.data.fingerprints,
        # How examples become training and scoring: a change trains and scores differently.
        "preparation": {
            "format": runner.data.format_description,
            "format_name": runner.data.format,
            "direction": config.objective.goal,  # a user metric's, which may be flipped
            "chat_template": _digest(chat_template_text(config.data)),
            "drop_long": config.data.drop_long,
            "prompt_field": config.data.prompt_field,
            "response_field": config.data.response_field,
            "template": config.data.template,
            "max_length": config.data.max_length,
            "max_train_examples": config.training.max_train_examples,
            "max_validation_examples": config.training.max_validation_examples,
            "n_train": runner.data.n_train,
            "early_stopping_patience": config.training.early_stopping_patience,
            "eval_samples": config.objective.eval_samples,
            "max_new_tokens": config.objective.max_new_tokens,
        },
    }
    if budget_fit is not None:
        setup[keys.SETUP_BUDGET_FIT] = budget_fit
    # Seeds together draw other dropout streams: never mixed with seeds one after the other.
    setup["seeds_together"] = trains_together(
        config.method, config.training, len(config.objective.seed_list)
    )
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1:  # the effective batch is per process: never mix with other launches
        setup["processes"] = processes
    return setup


def _record_first(
    study: optuna.Study, setup: dict[str, Any], config: TuneConfig, runner: RunnerBase
) -> None:
    """The first worker's record: the setup, the environment and the data's checks."""
    study.set_user_attr(keys.SETUP, setup)
    study.set_user_attr(keys.BLEU_SIGNATURE, bleu_signature())
    study.set_user_attr(keys.SCORING, scoring(config, runner.data))
    study.set_user_attr(keys.SPLIT_OVERLAPS, runner.data.overlaps)
    environment = describe_environment()
    environment.update(backend=runner.backend, dtype=resolved_dtype(config.model))
    study.set_user_attr(keys.ENVIRONMENT, environment)
