"""Seeds together (``training.seeds_together``), and candidates together: the seeds of one
trial, or of several trials whose configurations differ only in what an adapter can hold on
its own, as LoRA adapters over one frozen base, trained in one loop by hptune's Accelerate
backend.

Each step stacks the adapters' micro-batches (each seed's own data order: the permutation
seeded by ``seed + epoch``, as one seed's run reads it) and runs one forward and backward
over them; each adapter's loss is the mean over the target tokens of its own accumulation
window, so each gets the gradient its own run would. Each adapter has its own dropout
stream, its gradient clipped by its own ``max_grad_norm``, its divergence watched alone, its
own AdamW (learning rate, weight decay) and schedule (scheduler, warmup), and its own LoRA
alpha. What adapters in one stack share: the batch, the accumulation, the epochs and the
rank (`kept_apart`). After every epoch each adapter goes back into the peft model, which is
measured, checkpointed and reported exactly as one seed's run is
(`RunnerBase.close_epoch`): curves, checkpoints, pruning and early stopping stay per seed.

What it does not do: resume from a checkpoint (its checkpoints hold weights, not the
optimizer: a retried trial trains again from the start); a seed stopped early still rides
along in the stack (its results are final; the stack's time goes to the adapters still
training) until every adapter stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hptune._lazy import LazyImport, accelerate_utils
from hptune.config._together import trains_together as configured
from hptune.hparams import HParams
from hptune.train import _stack_loop
from hptune.train._divergence import DivergenceWatch
from hptune.train._eval_loaders import EvalLoaders
from hptune.train._parallel import is_data_parallel
from hptune.train._results import EpochCallback, RunResult
from hptune.train._stack_loop import Member
from hptune.train.arguments import mixed_precision, run_args
from hptune.train.runner import RunnerBase
from hptune.train.steps import accepts_loss_kwargs, adamw_over, build_scheduler, make_accelerator
from hptune.train.target import stack_check

if TYPE_CHECKING:
    from hptune.train import stacked_lora
else:
    # Its layers subclass torch's nn.Module: importing it imports torch, which importing this
    # module (for `seeds_per_step`, when a run is planned) must not.
    stacked_lora = LazyImport("hptune.train.stacked_lora")

__all__ = [
    "Member",
    "kept_apart",
    "seeds_per_step",
    "train_group",
    "train_together",
    "trains_together",
]


def trains_together(runner: RunnerBase, seeds: Sequence[int]) -> bool:
    """Whether ``runner`` trains ``seeds`` together: the configuration asks for it and allows
    it (`hptune.config.trains_together`), the backend can, there are two seeds or more, and
    this is a single process not in float16 (a data-parallel launch, and float16's one loss
    scaler, train one seed at a time).

    Args:
        runner: The run's trainer.
        seeds: A trial's seeds.

    Returns:
        True when they train together.
    """
    config = runner.config
    declared = getattr(runner, "declared", None)  # a runner of your own may not say
    stacks = declared is not None and declared.seeds_together
    wanted = configured(config.method, config.training, len(seeds))
    # float16's loss scaling is one scaler for all: an overflow in one seed would skip all
    alone = is_data_parallel() or mixed_precision() == "fp16"
    return bool(stacks and wanted and not alone)


def seeds_per_step(runner: RunnerBase, hp: HParams, seeds: Sequence[int]) -> int:
    """How many of a trial's ``seeds`` train together (K): all of them, or as many as the
    memory a step may use fits (`MemoryCheck.fits` with K seeds); 1 when they train one
    after the other.

    Args:
        runner: The run's trainer.
        hp: The trial's configuration (its batch).
        seeds: The trial's seeds.

    Returns:
        K, from 1 to ``len(seeds)``.
    """
    if not trains_together(runner, seeds):
        return 1
    check = stack_check(runner.config, runner)  # None: no limit (a CPU)
    fitting = [
        k for k in range(2, len(seeds) + 1) if check is None or check.fits(hp.batch_size, seeds=k)
    ]
    return max(fitting, default=1)


def kept_apart(first: HParams, other: HParams) -> str | None:
    """Why two configurations cannot train in one stack, or None when they can.

    Adapters stacked together share the batches' shape, the number of steps and the rank;
    each keeps its own learning rate, weight decay, schedule, warmup, clipping and alpha.

    Args:
        first: One configuration.
        other: Another.

    Returns:
        The reason in words (e.g. ``batch size 4 against 8``), or None.
    """
    for key in ("batch_size", "gradient_accumulation_steps", "epochs", "lora_r"):
        if getattr(first, key) != getattr(other, key):
            name = key.replace("_", " ")
            return f"{name} {getattr(first, key)} against {getattr(other, key)}"
    if first.args != other.args:
        return "their training.args differ"
    return None


def train_together(
    runner: RunnerBase,
    hp: HParams,
    seeds: Sequence[int],
    on_epoch: Sequence[EpochCallback | None],
    *,
    evaluate_test: bool = False,
    run_name: str | None = None,
    stopped: Callable[[], bool] | None = None,
) -> list[RunResult]:
    """Train ``hp`` on every seed of ``seeds`` at once: `train_group` with one member.

    Args:
        runner: hptune's Accelerate runner (its model, data and measures).
        hp: The configuration to train.
        seeds: The seeds, in order.
        on_epoch: Each seed's epoch callback (False stops that seed).
        evaluate_test: Measure the test split after every epoch too.
        run_name: Where checkpoints go (as `RunnerBase.train`'s).
        stopped: Whether the trial is over (pruned): every seed stops at once.

    Returns:
        Each seed's run, in the order of ``seeds``.
    """
    member = Member(hp, seeds, on_epoch, run_name, stopped)
    return train_group(runner, [member], evaluate_test=evaluate_test)[0]


def train_group(
    runner: RunnerBase, members: Sequence[Member], *, evaluate_test: bool = False
) -> list[list[RunResult]]:
    """Train every member's seeds at once, one adapter each; see the module's docstring.

    A member whose seed diverges, or whose trial is pruned, stops alone; the others go on.

    Args:
        runner: hptune's Accelerate runner (its model, data and measures).
        members: The trials, each with its configuration, seeds and callbacks; `kept_apart`
            must find nothing between any two.
        evaluate_test: Measure the test split after every epoch too.

    Returns:
        Each member's runs, in the order of its seeds.

    Raises:
        ValueError: Two members that cannot share a stack.
    """
    for other in members[1:]:
        if (why := kept_apart(members[0].hp, other.hp)) is not None:
            raise ValueError(f"these configurations train apart: {why}")
    accelerator = make_accelerator()
    hp = members[0].hp
    loaders = runner.eval_loaders(hp, accelerator.device, test=evaluate_test)
    built: list[Any] = []  # the peft model and its stack, once loaded: released in any case
    try:
        loop = _start(runner, members, accelerator, loaders, built, evaluate_test)
        for epoch in range(1, hp.epochs + 1):
            if not loop.epoch(epoch) or not loop.close(epoch, loaders):
                break
    finally:
        if len(built) > 1:
            built[1].seed_model(0)  # the peft layers back in place, for the base's release
        accelerator.free_memory()
        if built:
            runner.release_run_model(built[0])
    return [[a.result for a in loop.adapters if a.member == m] for m in range(len(members))]


def _start(
    runner: RunnerBase,
    members: Sequence[Member],
    accelerator: Any,
    loaders: EvalLoaders,
    built: list[Any],
    evaluate_test: bool,
) -> _stack_loop.StackLoop:
    """The stack built, each adapter with its optimizer and schedule, prepared, where it
    starts measured (after prepare, before any step, as the loop measures it)."""
    config = runner.config
    owners = [(m, seed) for m, member in enumerate(members) for seed in member.seeds]
    stack = _stack(runner, members, owners, accelerator.device, built)
    trained = stack.stacked()
    optimizers = [
        adamw_over(
            stack.parameters(k), members[m].hp, config.training.optim, _args(runner, m, members)
        )
        for k, (m, _) in enumerate(owners)
    ]
    trained, *optimizers = accelerator.prepare(trained, *optimizers)
    initial = runner.initial_loss(stack.seed_model(0), loaders)
    stack.stacked()
    data = _stack_loop.SeedData(runner, members[0].hp.batch_size, [s for _, s in owners])
    adapters = []
    for (m, seed), optimizer in zip(owners, optimizers, strict=True):
        hp = members[m].hp
        result = RunResult(seed=seed, initial_eval_loss=initial)
        scheduler = build_scheduler(optimizer, hp, len(data), _args(runner, m, members))
        where = runner.begin_run(
            hp, seed, evaluate_test=evaluate_test, run_name=members[m].run_name
        )
        watch = DivergenceWatch(start=initial)
        adapters.append(_stack_loop.Adapter(m, seed, result, optimizer, scheduler, watch, where))
    loop = _stack_loop.StackLoop(runner, members, stack, trained, data, adapters, accelerator)
    loop.loss_kwargs = accepts_loss_kwargs(stack.model)
    return loop


def _args(runner: RunnerBase, m: int, members: Sequence[Member]) -> dict[str, Any]:
    return run_args(runner.config, members[m].hp)


def _stack(
    runner: RunnerBase,
    members: Sequence[Member],
    owners: list[tuple[int, int]],
    device: Any,
    built: list[Any],
) -> Any:
    """The adapters stacked on one peft model, each initialised as its own run's (the global
    random state seeded, then the adapter built with its member's rank and alpha); ``built``
    gets the model, then the stack, as soon as each exists (the caller releases them
    whatever fails)."""
    adapters = []
    for m, seed in owners:
        if built:
            runner.release_run_model(built.pop())  # one model at a time, even at the peak
        accelerate_utils.set_seed(seed)
        built.append(runner.load_run_model(members[m].hp))
        adapters.append(stacked_lora.StackedAdapters.adapter_of(built[0]))
    model = built[0].to(device)
    seeds = [seed for _, seed in owners]
    streams = stacked_lora.SeedStreams(seeds, device)
    on_device = [[(a.to(device), b.to(device), c) for a, b, c in own] for own in adapters]
    method = runner.config.method
    alphas = [members[m].hp.lora_alpha or method.alpha for m, _ in owners]
    built.append(stacked_lora.StackedAdapters(model, on_device, streams, alphas))
    # the base's own dropout, if it has any, draws from the global state
    accelerate_utils.set_seed(seeds[0])
    return built[1]
