"""A compute budget: the phases fitted into it before the run, and kept to during it."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from hptune import keys
from hptune.config import config_from_dict
from hptune.exceptions import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _demo(tmp_path: Path, **changes: object) -> dict:
    raw = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "out")
    raw.update(changes)
    return raw


def _stored_seed_epochs(config) -> int:
    """Seed-epochs trained, counted from the storage (trials read back are not trained)."""
    total = 0
    for summary in optuna.get_all_study_summaries(config.storage_url):
        study = optuna.load_study(study_name=summary.study_name, storage=config.storage_url)
        for trial in study.trials:
            if keys.REUSED_FROM in trial.user_attrs:
                continue
            for run in trial.user_attrs.get(keys.RUNS, []):
                total += len(run["epochs"]) - run.get("resumed_after", 0)
    return total


def test_a_quarter_of_the_plan_gives_a_plan_within_it_regularization_then_seeds_cut_first(
    demo_path, tmp_path
) -> None:
    """The fit counts the plan without racing; it cuts the edge extensions, then the
    regularization phase down to its floor, then seeds, and only then the other phases'
    notches; racing is neither counted nor cut."""
    from hptune.plan import make_plan

    unbudgeted = make_plan(config_from_dict(_demo(tmp_path)))
    without_racing = sum(p.without_racing for p in unbudgeted.phases)
    assert without_racing < unbudgeted.seed_epochs  # racing's "up to" is shown apart
    limit = without_racing // 4
    plan = make_plan(config_from_dict(_demo(tmp_path, budget={"seed_epochs": limit})))
    fit = plan.budget
    assert fit is not None and fit.unbudgeted == without_racing and fit.limit == limit
    assert fit.planned == sum(p.without_racing for p in plan.phases) <= limit
    assert plan.seed_epochs == limit  # racing may fill the rest; the budget bounds it
    assert fit.racing == limit - fit.planned == fit.to_dict()["racing_seed_epochs"]
    words = [str(cut) for cut in fit.cuts]
    assert words[0].startswith("edge extensions off")
    seeds_at = next(i for i, w in enumerate(words) if w.startswith("objective.seeds 3 -> 2"))
    before = words[1:seeds_at]  # the regularization phase, down to its floor, and only it
    assert before and all(w.startswith("phases.regularization.n_trials") for w in before)
    assert before[-1].split(":")[0].endswith("-> 4")  # the incoming + one candidate x 3 rates
    assert not any("racing" in w or "max_seeds" in w for w in words)
    assert plan.seeds == [0, 1]
    # racing is kept: it may give the seed cut back to the configurations in question
    assert fit.config.objective.max_seeds == 5
    assert "racing up to 5 seeds" in {p.phase: p for p in plan.phases}["learning_rate"].what
    # just enough for the plan on two seeds: no other phase's notch
    seeds_only = fit.cuts[seeds_at].plan
    plan = make_plan(config_from_dict(_demo(tmp_path, budget={"seed_epochs": seeds_only})))
    assert plan.budget is not None
    assert [str(c) for c in plan.budget.cuts] == words[: seeds_at + 1]
    # just enough for three seeds and the regularization floor: seeds are kept
    floor = fit.cuts[seeds_at - 1].plan
    plan = make_plan(config_from_dict(_demo(tmp_path, budget={"seed_epochs": floor})))
    assert plan.budget is not None and plan.seeds == [0, 1, 2]


def test_the_phases_after_one_are_planned_from_where_it_starts(demo_path, tmp_path) -> None:
    """What racing must leave: the plan's rows after the phase, racing left out; the epochs
    phase passes its longest run on to the phases after it."""
    from hptune.budget import planned_after
    from hptune.plan import make_plan

    config = config_from_dict(_demo(tmp_path))
    plan = make_plan(config)
    rows = {p.phase: p.without_racing for p in plan.phases}
    names = list(rows)
    after = planned_after(config, plan.hparams, plan.n_train, "learning_rate", has_test=True)
    assert after == {name: rows[name] for name in names[names.index("learning_rate") + 1 :]}
    longest = plan.hparams.replace(epochs=1)  # planned from the epochs phase's own start
    after_epochs = planned_after(config, longest, plan.n_train, "epochs", has_test=True)
    assert after_epochs["regularization"] == rows["regularization"]
    assert "final" in after_epochs and "final" not in planned_after(
        config, longest, plan.n_train, "epochs", has_test=False)  # fmt: skip


def test_a_budget_below_the_minimum_is_refused_with_the_number_needed(demo_path, tmp_path) -> None:
    from hptune.plan import make_plan

    with pytest.raises(ConfigError) as refused:
        make_plan(config_from_dict(_demo(tmp_path, budget={"seed_epochs": 10})))
    message = str(refused.value)
    assert "seed_epochs 10 is below the method's minimum for this run" in message
    needed = int(message.split("Raise the budget to at least ")[1].split()[0])
    minimum = make_plan(config_from_dict(_demo(tmp_path, budget={"seed_epochs": needed})))
    assert minimum.seed_epochs == needed and minimum.seeds == [0, 1]
    with pytest.raises(ConfigError, match="below the method's minimum"):
        make_plan(config_from_dict(_demo(tmp_path, budget={"seed_epochs": needed - 1})))


def test_gpu_hours_are_planned_with_a_throughput(demo_path, tmp_path) -> None:
    from hptune.plan import make_plan

    with pytest.raises(ConfigError, match="no throughput is known for this target"):
        make_plan(config_from_dict(_demo(tmp_path, budget={"gpu_hours": 1})))
    plan = make_plan(config_from_dict(
        _demo(tmp_path, budget={"gpu_hours": 0.2, "examples_per_second": 100})))  # fmt: skip
    assert plan.budget is not None and plan.budget.limit == 72  # 0.2 h x 3600 x 100 / 1000
    assert plan.seed_epochs <= 72
    assert plan.hours is not None and plan.hours <= 0.2
    assert plan.throughput == (100, "budget.examples_per_second")


@pytest.mark.slow
def test_a_run_under_a_seed_epoch_budget_never_exceeds_it(demo_path, tmp_path) -> None:
    """All five phases (of the shared small configuration) one seed-epoch below their plan
    without racing (a cut is made; racing may fill the rest), counted from the storage,
    phase by phase too."""
    from hptune.ledger import trained_by_phase
    from hptune.pipeline import tune
    from hptune.plan import make_plan
    from hptune.storage import open_storage
    from tests.conftest import five_phase_config

    raw = five_phase_config(tmp_path)
    raw["training"]["checkpoints"] = False
    raw["phases"]["regularization"]["n_trials"] = 5  # a cut leaves 4: the incoming + 1 x 3 rates
    limit = sum(p.without_racing for p in make_plan(config_from_dict(raw)).phases) - 1
    config = config_from_dict({**raw, "budget": {"seed_epochs": limit}})
    result = tune(config)
    assert result.budget is not None and result.budget.cuts
    spent = _stored_seed_epochs(config)
    assert 0 < spent <= limit
    by_phase = trained_by_phase(config, open_storage(config))
    assert sum(row["seed_epochs"] for row in by_phase.values()) == spent
    print(f"budget {limit} seed-epochs, trained {spent}, cuts {result.budget.cuts}, "
          f"by phase {by_phase}")  # fmt: skip


def test_a_phase_the_budget_stops_decides_on_what_it_has(tiny_config_dict) -> None:
    """An optimistic throughput plans no cut; the measured one keeps the next trial from
    starting, and the phase decides on the trial it has (read back: it cost nothing)."""
    from hptune.pipeline import tune

    tiny_config_dict["budget"] = {"gpu_hours": 1e-6, "examples_per_second": 1e7}
    tiny_config_dict["phases"]["learning_rate"]["grid"] = [5e-3, 5e-2]  # 5e-3: the baseline's
    config = config_from_dict(tiny_config_dict)
    events: list[dict] = []
    result = tune(config, progress=events.append)
    assert result.budget is not None and not result.budget.cuts
    study = optuna.load_study(study_name=config.study_name("learning_rate"),
                              storage=config.storage_url)  # fmt: skip
    (stopped,) = [t for t in study.trials
                  if t.user_attrs.get(keys.STATUS) == keys.TrialStatus.OVER_BUDGET]  # fmt: skip
    assert stopped.params == {"learning_rate": 5e-2} and keys.RUNS not in stopped.user_attrs
    assert stopped.state == optuna.trial.TrialState.PRUNED
    why = stopped.user_attrs[keys.OVER_BUDGET]
    assert "GPU hours (2 seed-epochs at the measured" in why  # the run's throughput, not 1e7
    assert [e for e in events if e["event"] == "over_budget"]
    decision = result.phases[1].decision
    assert "the compute budget kept 1 trial(s) from starting" in decision.reason
    assert decision.params == {"learning_rate": 5e-3}


def test_a_phase_with_nothing_the_budget_can_finish_stops_the_run_until_it_grows(
    tiny_config_dict, tmp_path
) -> None:
    import subprocess
    import sys

    def run(budget: dict) -> subprocess.CompletedProcess:
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump({**tiny_config_dict, "budget": budget}))
        return subprocess.run([sys.executable, "-m", "hptune", "run", "-q", str(path)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip

    done = run({"gpu_hours": 1e-6, "examples_per_second": 1e7})
    assert done.returncode == 3, done.stderr[-2000:]
    assert "hptune: budget spent: the compute budget cannot finish a trial of the " \
           "learning_rate phase" in done.stderr and "Traceback" not in done.stderr  # fmt: skip
    config = config_from_dict(tiny_config_dict)
    study = optuna.load_study(study_name=config.study_name("learning_rate"),
                              storage=config.storage_url)  # fmt: skip
    assert keys.DECISION not in study.user_attrs  # undecided: nothing trained to decide on
    (refused,) = [t for t in study.trials if t.state.is_finished()]  # the other still queued
    assert refused.params == {"learning_rate": 1e-4}
    assert refused.state == optuna.trial.TrialState.FAIL
    assert refused.user_attrs[keys.STATUS] == keys.TrialStatus.OVER_BUDGET
    done = run({"gpu_hours": 1.0, "examples_per_second": 1e7})  # more: the same command goes on
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(study_name=config.study_name("learning_rate"),
                              storage=config.storage_url)  # fmt: skip
    assert keys.DECISION in study.user_attrs
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert {t.params["learning_rate"] for t in trained} == {1e-4, 5e-3}


def test_status_says_what_the_run_trained_against_its_budget(tiny_config_dict, tmp_path) -> None:
    import subprocess
    import sys

    from hptune.pipeline import tune
    from hptune.record import RunRecord

    tiny_config_dict["budget"] = {"seed_epochs": 40}
    config = config_from_dict(tiny_config_dict)
    tune(config)
    spent = RunRecord(config).trained()
    assert spent["seed_epochs"] == _stored_seed_epochs(config) == 4  # baseline + one new rate
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config_dict))
    done = subprocess.run([sys.executable, "-m", "hptune", "status", str(path)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "trained so far: 4 seed-epochs" in done.stdout
    assert "(budget: 40 seed-epochs)" in done.stdout


def test_under_strict_guardrails_a_budget_keeps_three_seeds(demo_path, tmp_path) -> None:
    from hptune.plan import make_plan

    raw = _demo(tmp_path, budget={"seed_epochs": 10})
    raw["guardrails"]["strict"] = True  # two seeds would be refused (two_seeds)
    with pytest.raises(ConfigError, match=r"minimum for this run, \d+ seed-epochs \(3 seeds"):
        make_plan(config_from_dict(raw))


def test_a_stored_fit_is_made_again_whatever_the_throughput_says_now(demo_path, tmp_path) -> None:
    """Workers estimating other speeds make the first fit's cuts; another budget refits."""
    from hptune.budget import fit_budget
    from hptune.plan import make_plan

    config = config_from_dict(_demo(tmp_path, budget={"gpu_hours": 0.2}))
    plan = make_plan(config_from_dict(_demo(tmp_path)))  # the start and sizes, unbudgeted
    first = fit_budget(config, plan.hparams, plan.n_train, has_test=True,
                       throughput=(100, "measured"))  # fmt: skip
    assert first is not None and first.cuts and not first.reapplied
    stored = json.loads(json.dumps(first.to_stored()))  # as a storage keeps it
    faster = fit_budget(config, plan.hparams, plan.n_train, has_test=True,
                        throughput=(400, "another worker's estimate"), stored=stored)  # fmt: skip
    assert faster is not None and faster.reapplied
    assert [str(c) for c in faster.cuts] == [str(c) for c in first.cuts]
    assert faster.config.model_dump() == first.config.model_dump()
    assert faster.limit == first.limit
    assert config.phases.regularization.n_trials == 8  # the user's configuration is not cut
    more = config_from_dict(_demo(tmp_path, budget={"gpu_hours": 0.4}))
    refit = fit_budget(more, plan.hparams, plan.n_train, has_test=True,
                       throughput=(100, "measured"), stored=stored)  # fmt: skip
    assert refit is not None and not refit.reapplied and len(refit.cuts) < len(first.cuts)


def test_a_stored_fit_that_no_longer_fits_is_cut_on_from(demo_path, tmp_path) -> None:
    """A fit stored before the plan grew (racing off was all it cut; edge extensions came
    later): made again, it would plan past its limit; it is cut on from instead."""
    from hptune.budget import Cut, apply_cuts, fit_budget
    from hptune.plan import make_plan

    plan = make_plan(config_from_dict(_demo(tmp_path)))
    raw = _demo(tmp_path)
    raw["phases"]["learning_rate"] = {**raw["phases"].get("learning_rate", {}), "extend_edges": 0}
    raw["phases"]["epochs"] = {**raw["phases"].get("epochs", {}), "extend_edges": 0}
    older = config_from_dict(raw)
    racing_off = Cut({"objective.max_seeds": 3}, "racing off (objective.max_seeds 5 -> 3)")
    limit = make_plan(apply_cuts(older, [racing_off])).seed_epochs
    config = config_from_dict(_demo(tmp_path, budget={"seed_epochs": limit}))
    stored = {"budget": config.budget.model_dump(mode="json"), "limit": limit,
              "described": f"seed_epochs {limit}", "examples_per_second": None,
              "cuts": [racing_off.to_dict()]}  # fmt: skip
    fit = fit_budget(config, plan.hparams, plan.n_train, has_test=True, stored=stored)
    assert fit is not None and fit.reapplied
    assert fit.planned <= limit
    assert [c.words for c in fit.cuts][:2] == [racing_off.words, fit.cuts[1].words]
    assert fit.cuts[1].words.startswith("edge extensions off")


def test_a_larger_budget_that_gives_back_a_seed_goes_on_and_finishes(tiny_config_dict) -> None:
    """A budget that cuts a seed stops the run after the baseline; a larger one gives the
    seed back: the baseline stays decided on 2 seeds, the next phase runs on 3."""
    from hptune.exceptions import BudgetSpent
    from hptune.pipeline import tune
    from hptune.plan import make_plan
    from hptune.record import RunRecord

    raw = tiny_config_dict
    raw["objective"]["seeds"] = 3
    raw["phases"]["learning_rate"]["grid"] = [1e-4, 2e-2]  # neither is the baseline's rate
    two = {**raw, "objective": {**raw["objective"], "seeds": 2, "max_seeds": 2}}
    limit = make_plan(config_from_dict(two)).seed_epochs  # the plan on 2 seeds, no racing
    # An optimistic throughput plans 2 seeds; the measured one then stops the run.
    rate = (limit + 0.5) * 96 / (1e-6 * 3600)
    small = config_from_dict({**raw, "budget": {"gpu_hours": 1e-6, "examples_per_second": rate}})
    with pytest.raises(BudgetSpent):
        tune(small)
    setup = RunRecord(small).phase("baseline").user_attrs[keys.SETUP]
    assert setup["seeds"] == [0, 1]
    assert [c["words"] for c in setup[keys.SETUP_BUDGET_FIT]["cuts"]][
        -1
    ] == "objective.seeds 3 -> 2"
    assert RunRecord(small).fitted_config().objective.seed_list == [0, 1]

    large = config_from_dict({**raw, "budget": {"seed_epochs": 1000}})
    result = tune(large)
    assert [p.phase for p in result.phases] == ["baseline", "learning_rate"]
    record = RunRecord(large)
    baseline, learning_rate = record.phases(["baseline", "learning_rate"])
    assert baseline.user_attrs[keys.SETUP]["seeds"] == [0, 1]  # kept as decided
    assert learning_rate.user_attrs[keys.SETUP]["seeds"] == [0, 1, 2]
    trained = [t for t in learning_rate.trials if keys.RUNS in t.user_attrs]
    assert trained and all(len(t.user_attrs[keys.RUNS]) == 3 for t in trained)
    assert record.fitted_config().objective.seed_list == [0, 1, 2]


def test_a_phase_s_trial_at_its_incoming_configuration_is_planned_as_read_back(
    demo_path, tmp_path
) -> None:
    """The phase before trained the incoming configuration on the same seeds: the plan
    counts it once (the learning-rate grid's starting rate, the epochs range's incoming
    count, the regularization phase's incoming candidate at its own rate)."""
    from hptune.budget import planned_phases
    from hptune.plan import make_plan

    config = config_from_dict(_demo(tmp_path))
    plan = make_plan(config)
    rows = {p.phase: p for p in planned_phases(config, plan.hparams, plan.n_train,
                                                has_test=False)}  # fmt: skip
    n, epochs = len(config.objective.seed_list), plan.hparams.epochs
    grid = config.phases.learning_rate.grid
    assert plan.hparams.learning_rate in grid
    trials = len(grid) + config.phases.learning_rate.extend_edges
    assert rows["learning_rate"].without_racing == n * (trials - 1) * epochs
    alone = config.with_changes({"phases.run": ["learning_rate"]})
    (first,) = planned_phases(alone, plan.hparams, plan.n_train, has_test=False)
    assert first.without_racing == n * trials * epochs  # nothing ran before it


def test_the_regularization_cut_keeps_a_changed_candidate_at_every_rate(
    demo_path, tmp_path
) -> None:
    from hptune.phases import RegularizationPhase
    from hptune.plan import make_plan

    config = config_from_dict(_demo(tmp_path))
    plan = make_plan(config)
    sizes = []
    while (cut := RegularizationPhase.budget_cut(config, plan.hparams, plan.n_train)) is not None:
        config = config.with_changes(cut.changes)
        sizes.append(config.phases.regularization.n_trials)
    assert sizes[-1] == 4  # the incoming configuration, and one candidate at x0.5, x1, x2
