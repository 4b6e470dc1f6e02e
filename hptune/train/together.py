"""Seeds together (``training.seeds_together``): the seeds of one trial as K LoRA adapters over
one frozen base, trained in one loop by hptune's Accelerate backend.

Each step stacks the K seeds' micro-batches (each seed's own data order: the permutation
seeded by ``seed + epoch``, as one seed's run reads it) and runs one forward and backward
over them; each seed's loss is the mean over the target tokens of its own accumulation
window, so each adapter gets the gradient its own run would. Each seed has its own dropout
stream, its gradient clipped by its own norm, its divergence watched alone; AdamW is
element-wise, so one optimizer over the stacked tensors steps each seed as its own would, on
the one schedule they share. After every epoch each seed's adapter goes back into the peft
model, which is measured, checkpointed and reported exactly as one seed's run is
(`RunnerBase.close_epoch`): curves, checkpoints, pruning and early stopping stay per seed.

What it does not do: resume from a checkpoint (its checkpoints hold weights, not the
optimizer: a retried trial trains again from the start); a seed stopped early still rides
along in the stack (its results are final; the stack's time goes to the seeds still
training) until every seed stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hptune._lazy import LazyImport, accelerate_data_loader, accelerate_utils, torch, torch_data
from hptune._signals import raise_if_interrupted
from hptune.config._together import trains_together as configured
from hptune.hparams import HParams
from hptune.train._divergence import DivergenceWatch
from hptune.train._eval_loaders import EvalLoaders
from hptune.train._parallel import is_data_parallel
from hptune.train._results import EpochCallback, RunResult
from hptune.train.arguments import mixed_precision, run_args
from hptune.train.runner import RunnerBase
from hptune.train.steps import (
    accepts_loss_kwargs,
    build_adamw,
    build_scheduler,
    make_accelerator,
    targets,
    windows,
)
from hptune.train.target import memory_check

if TYPE_CHECKING:
    from hptune.train import stacked_lora
else:
    # Its layers subclass torch's nn.Module: importing it imports torch, which importing this
    # module (for `seeds_per_step`, when a run is planned) must not.
    stacked_lora = LazyImport("hptune.train.stacked_lora")

__all__ = ["seeds_per_step", "train_together", "trains_together"]


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
    check = memory_check(runner.config, runner)  # None: no limit (a CPU without a stand-in)
    fitting = [
        k for k in range(2, len(seeds) + 1) if check is None or check.fits(hp.batch_size, seeds=k)
    ]
    return max(fitting, default=1)


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
    """Train ``hp`` on every seed of ``seeds`` at once; see the module's docstring.

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
    accelerator = make_accelerator()
    dirs = [
        runner.begin_run(hp, seed, evaluate_test=evaluate_test, run_name=run_name) for seed in seeds
    ]
    loaders = runner.eval_loaders(hp, accelerator.device, test=evaluate_test)
    results = [RunResult(seed=s) for s in seeds]
    built: list[Any] = []  # the peft model and its stack, once loaded: released in any case
    try:
        loop = _start(runner, hp, seeds, accelerator, loaders, results, built)
        for epoch in range(1, hp.epochs + 1):
            if not loop.epoch(epoch):
                break
            if not loop.close(epoch, loaders, on_epoch, dirs, stopped):
                break
    finally:
        if len(built) > 1:
            built[1].seed_model(0)  # the peft layers back in place, for the base's release
        accelerator.free_memory()
        if built:
            runner.release_run_model(built[0])
    return results


def _start(
    runner: RunnerBase,
    hp: HParams,
    seeds: Sequence[int],
    accelerator: Any,
    loaders: EvalLoaders,
    results: list[RunResult],
    built: list[Any],
) -> _Loop:
    """The stack built and prepared with its optimizer and schedule, where it starts
    measured (after prepare, its autocast, before any step, as the loop measures it)."""
    training = runner.config.training
    stack = _stack(runner, hp, seeds, accelerator.device, built)
    args = run_args(runner.config, hp)
    trained = stack.stacked()
    optimizer = build_adamw(trained, hp, training.optim, args)
    trained, optimizer = accelerator.prepare(trained, optimizer)
    initial = runner.initial_loss(stack.seed_model(0), loaders)
    for result in results:
        result.initial_eval_loss = initial
    stack.stacked()
    data = _SeedData(runner, hp, seeds)
    scheduler = build_scheduler(optimizer, hp, len(data), args)
    watches = [DivergenceWatch(start=initial) for _ in seeds]
    prepared = (trained, optimizer, scheduler)
    loop = _Loop(runner, hp, stack, prepared, data, results, watches, accelerator)
    loop.loss_kwargs = accepts_loss_kwargs(stack.model)
    return loop


def _stack(
    runner: RunnerBase, hp: HParams, seeds: Sequence[int], device: Any, built: list[Any]
) -> Any:
    """The seeds' adapters stacked on one peft model, each initialised as its own run's (the
    global random state seeded, then the adapter built); ``built`` gets the model, then the
    stack, as soon as each exists (the caller releases them whatever fails)."""
    adapters = []
    for seed in seeds:
        if built:
            runner.release_run_model(built.pop())  # one model at a time, even at the peak
        accelerate_utils.set_seed(seed)
        built.append(runner.load_run_model(hp))
        adapters.append(stacked_lora.StackedAdapters.adapter_of(built[0]))
    model = built[0].to(device)
    streams = stacked_lora.SeedStreams([torch.Generator(device).manual_seed(s) for s in seeds])
    on_device = [[(a.to(device), b.to(device)) for a, b in seed] for seed in adapters]
    built.append(stacked_lora.StackedAdapters(model, on_device, streams))
    accelerate_utils.set_seed(
        seeds[0]
    )  # the base's own dropout, if it has any, draws from the global state
    return built[1]


class _SeedData:
    """Each seed's training batches, in its own order, zipped: one tuple of K per step."""

    def __init__(self, runner: RunnerBase, hp: HParams, seeds: Sequence[int]) -> None:
        train = runner.data.train
        self.samplers = [
            accelerate_data_loader.SeedableRandomSampler(train, data_seed=s) for s in seeds
        ]
        collate = runner.collator()
        self.loaders = [
            torch_data.DataLoader(train, batch_size=hp.batch_size, sampler=s, collate_fn=collate)
            for s in self.samplers
        ]
        self.pad_id = runner.tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.loaders[0])

    def epoch(self, epoch: int, device: Any) -> Iterator[list[dict[str, Any]]]:
        """The epoch's steps: each a list of K batches (seed order), on ``device``."""
        for sampler in self.samplers:
            sampler.set_epoch(epoch - 1)
        for batches in zip(*self.loaders, strict=True):
            yield [{k: v.to(device) for k, v in b.items()} for b in batches]


class _Loop:
    """The stacked training loop's state across epochs."""

    def __init__(
        self,
        runner: RunnerBase,
        hp: HParams,
        stack: Any,
        prepared: tuple[Any, Any, Any],
        data: _SeedData,
        results: list[RunResult],
        watches: list[DivergenceWatch],
        accelerator: Any,
    ) -> None:
        self.runner, self.hp, self.stack, self.data = runner, hp, stack, data
        #: The stacked model and its optimizer, as Accelerate prepared them, and the schedule.
        self.model, self.optimizer, self.scheduler = prepared
        self.results, self.watches, self.accelerator = results, watches, accelerator
        self.active = [True] * len(results)
        self.train_losses: list[float] = [0.0] * len(results)
        self.loss_kwargs = True  # whether the model takes num_items_in_batch (the loop's test)

    def epoch(self, epoch: int) -> bool:
        """Train one epoch of every seed; False when a seed diverged (the trial ends)."""
        k, hp, model = len(self.results), self.hp, self.model
        model.train()
        start = time.perf_counter()
        sums = torch.zeros(k, dtype=torch.float64, device=self.accelerator.device)
        n_steps = 0
        try:
            steps = self.data.epoch(epoch, self.accelerator.device)
            for window in windows(steps, hp.gradient_accumulation_steps):
                # each seed's loss: the mean over every target token of its own window
                own = [sum(targets(step[s]) for step in window) for s in range(k)]
                n_items = torch.stack(own).clamp(min=1)
                for micro, step in enumerate(window, start=1):
                    raise_if_interrupted()
                    losses, token_sums = self._backward(model, step, n_items, len(window))
                    sums += losses.detach().double()
                    if not self._watch(step, token_sums, epoch, micro):
                        return False
                if hp.max_grad_norm:
                    stacked_lora.clip_per_seed(self.stack.parameters(), hp.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
                n_steps += 1
        finally:
            spent = time.perf_counter() - start
            # the stack's time, on the seeds still training (a stopped one rides for free)
            training = [r for r, on in zip(self.results, self.active, strict=True) if on]
            for result in training or self.results:
                result.seconds += spent / len(training or self.results)
        self.train_losses = [float(s) / max(n_steps, 1) for s in sums]
        return True

    def _backward(
        self, model: Any, step: list[dict[str, Any]], n_items: Any, window: int
    ) -> tuple[Any, Any]:
        """One forward and backward over the K sub-batches: each seed's share of its
        window's mean token loss (a seed stopped early adds nothing), as the loop's; and each
        seed's token loss sum over its sub-batch, for the divergence watch."""
        batch = stacked_lora.stacked_batch(step, self.data.pad_id)
        if self.stack.streams is not None:  # each seed's masks at its own batch's length
            self.stack.streams.new_step([int(sub["input_ids"].shape[1]) for sub in step])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        k = len(step)
        # the labels shifted, not the logits (no copy of them), as transformers' causal-LM loss
        shifted = torch.nn.functional.pad(batch["labels"][:, 1:], (0, 1), value=-100)
        logits = logits.float()
        tokens = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), shifted.reshape(-1), reduction="none"
        ).reshape(k, -1)
        sums = tokens.sum(dim=1)
        if self.loss_kwargs:  # token sum / the window's tokens
            losses = sums / n_items
        else:  # a model without loss kwargs: its batch mean, as the Trainer (and the loop)
            own = torch.stack([targets(sub) for sub in step]).clamp(min=1)
            losses = sums / own / window
        active = torch.tensor(self.active, device=losses.device, dtype=losses.dtype)
        self.accelerator.backward((losses * active).sum())
        for s, (result, sub) in enumerate(zip(self.results, step, strict=True)):
            if self.active[s]:
                result.train_examples += int(sub["input_ids"].shape[0])
                result.train_tokens += int(sub["attention_mask"].sum())
        return losses, sums.detach()

    def _watch(self, step: list[dict[str, Any]], token_sums: Any, epoch: int, micro: int) -> bool:
        """Each active seed's batch mean token loss to its watch; False once one diverged."""
        for s, (sub, watch) in enumerate(zip(step, self.watches, strict=True)):
            if not self.active[s]:
                continue
            why = watch.update(float(token_sums[s]) / max(int(targets(sub)), 1))
            if why is not None:
                self.results[s].diverged = True
                self.results[s].diverged_at = f"epoch {epoch}, step {micro} ({why})"
                return False
        return True

    def close(
        self,
        epoch: int,
        loaders: EvalLoaders,
        on_epoch: Sequence[EpochCallback | None],
        dirs: Sequence[Any],
        stopped: Callable[[], bool] | None,
    ) -> bool:
        """Each active seed's epoch measured, checkpointed and reported as its own run's;
        False when no seed goes on (each stopped, one diverged, or the trial pruned)."""
        learning_rate = self.scheduler.get_last_lr()[0]
        for s, result in enumerate(self.results):
            if not self.active[s]:
                continue
            model = self.stack.seed_model(s)
            train_loss = self.train_losses[s]
            metrics = self.runner.measure_epoch(
                model, loaders, epoch=epoch, train_loss=train_loss, learning_rate=learning_rate
            )
            going_on = self.runner.close_epoch(
                model, metrics, result, on_epoch[s], checkpoint_dir=dirs[s]
            )
            self.active[s] = going_on
            if result.diverged or (stopped is not None and stopped()):
                self.stack.stacked()
                return False
        self.stack.stacked()
        return any(self.active)
