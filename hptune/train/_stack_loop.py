"""The stacked training loop: K adapters (members' seeds) over one frozen base, one forward and
backward a micro-batch, each adapter stepped by its own optimizer and schedule.

``hptune.train.together`` builds the stack and calls this loop; see its docstring for what
each adapter keeps as its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hptune._lazy import LazyImport, accelerate_data_loader, torch, torch_data
from hptune._signals import raise_if_interrupted
from hptune.hparams import HParams
from hptune.train._divergence import DivergenceWatch
from hptune.train._eval_loaders import EvalLoaders
from hptune.train._results import EpochCallback, RunResult
from hptune.train.runner import RunnerBase
from hptune.train.steps import targets, windows

if TYPE_CHECKING:
    from hptune.train import stacked_lora
else:
    stacked_lora = LazyImport("hptune.train.stacked_lora")

__all__ = ["Adapter", "Member", "SeedData", "StackLoop"]


@dataclass
class Member:
    """One trial's part of a stacked group: its configuration and seeds.

    Args:
        hp: The configuration the trial trains.
        seeds: Its seeds, in order.
        on_epoch: Each seed's epoch callback (False stops that seed).
        run_name: Where its checkpoints go (as `RunnerBase.train`'s).
        stopped: Whether the trial is over (pruned): its seeds stop at once.
    """

    hp: HParams
    seeds: Sequence[int]
    on_epoch: Sequence[EpochCallback | None]
    run_name: str | None = None
    stopped: Callable[[], bool] | None = None


@dataclass(eq=False)
class Adapter:
    """One adapter of the stack: a member's seed, its run, its optimizer and schedule."""

    member: int  # index of its member (trial) in the group
    seed: int
    result: RunResult
    optimizer: Any
    scheduler: Any
    watch: DivergenceWatch
    checkpoints: Any  # its checkpoint directory, or None
    active: bool = True
    train_loss: float = 0.0


class SeedData:
    """Each adapter's training batches, in its seed's order, zipped: K batches a step."""

    def __init__(self, runner: RunnerBase, batch_size: int, seeds: Sequence[int]) -> None:
        train = runner.data.train
        self.samplers = [
            accelerate_data_loader.SeedableRandomSampler(train, data_seed=s) for s in seeds
        ]
        collate = runner.collator()
        self.loaders = [
            torch_data.DataLoader(train, batch_size=batch_size, sampler=s, collate_fn=collate)
            for s in self.samplers
        ]
        self.pad_id = runner.tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.loaders[0])

    def epoch(self, epoch: int, device: Any) -> Iterator[list[dict[str, Any]]]:
        """The epoch's steps: each a list of K batches (adapter order), on ``device``."""
        for sampler in self.samplers:
            sampler.set_epoch(epoch - 1)
        for batches in zip(*self.loaders, strict=True):
            yield [{k: v.to(device) for k, v in b.items()} for b in batches]


class StackLoop:
    """The stacked loop's state across epochs."""

    def __init__(
        self,
        runner: RunnerBase,
        members: Sequence[Member],
        stack: Any,
        model: Any,
        data: SeedData,
        adapters: list[Adapter],
        accelerator: Any,
    ) -> None:
        self.runner, self.members, self.stack, self.model = runner, members, stack, model
        self.data, self.adapters, self.accelerator = data, adapters, accelerator
        self.accumulation = members[0].hp.gradient_accumulation_steps
        self.loss_kwargs = True  # whether the model takes num_items_in_batch (the loop's test)

    def running(self) -> bool:
        return any(a.active for a in self.adapters)

    def epoch(self, epoch: int) -> bool:
        """Train one epoch of every active adapter; False once none is left."""
        k, model = len(self.adapters), self.model
        model.train()
        start = time.perf_counter()
        sums = torch.zeros(k, dtype=torch.float64, device=self.accelerator.device)
        n_steps = 0
        try:
            steps = self.data.epoch(epoch, self.accelerator.device)
            for window in windows(steps, self.accumulation):
                # each adapter's loss: the mean over every target token of its own window
                own = [sum(targets(step[s]) for step in window) for s in range(k)]
                n_items = torch.stack(own).clamp(min=1)
                for micro, step in enumerate(window, start=1):
                    raise_if_interrupted()
                    losses, token_sums = self._backward(model, step, n_items, len(window))
                    sums += losses.detach().double()
                    self._watch(step, token_sums, epoch, micro)
                    if not self.running():
                        return False
                self._step()
                n_steps += 1
        finally:
            self._account(time.perf_counter() - start)
        for adapter, total in zip(self.adapters, sums, strict=True):
            adapter.train_loss = float(total) / max(n_steps, 1)
        return True

    def _step(self) -> None:
        """Each active adapter clipped by its own norm, stepped by its own optimizer."""
        indices = [i for i, a in enumerate(self.adapters) if a.active]
        active = [self.adapters[i] for i in indices]
        max_norms = [self.members[a.member].hp.max_grad_norm for a in active]
        stacked_lora.clip_per_adapter([self.stack.parameters(i) for i in indices], max_norms)
        for adapter in active:
            adapter.optimizer.step()
            adapter.scheduler.step()
        for adapter in self.adapters:
            adapter.optimizer.zero_grad()

    def _account(self, spent: float) -> None:
        """The stack's time, on the adapters still training (a stopped one rides for free)."""
        training = [a for a in self.adapters if a.active] or self.adapters
        for adapter in training:
            adapter.result.seconds += spent / len(training)

    def _backward(
        self, model: Any, step: list[dict[str, Any]], n_items: Any, window: int
    ) -> tuple[Any, Any]:
        """One forward and backward over the K sub-batches: each adapter's share of its
        window's mean token loss (an inactive one adds nothing), as the loop's; and each
        adapter's token loss sum over its sub-batch, for the divergence watch."""
        batch = stacked_lora.stacked_batch(step, self.data.pad_id)
        if self.stack.streams is not None:  # each adapter's masks at its own batch's length
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
        flags = [a.active for a in self.adapters]
        active = torch.tensor(flags, device=losses.device, dtype=losses.dtype)
        self.accelerator.backward((losses * active).sum())
        for adapter, sub in zip(self.adapters, step, strict=True):
            if adapter.active:
                adapter.result.train_examples += int(sub["input_ids"].shape[0])
                adapter.result.train_tokens += int(sub["attention_mask"].sum())
        return losses, sums.detach()

    def _watch(self, step: list[dict[str, Any]], token_sums: Any, epoch: int, micro: int) -> None:
        """Each active adapter's batch mean token loss to its watch: one that diverged ends
        its member (the trial's other seeds stop with it); the other members go on."""
        for s, (sub, adapter) in enumerate(zip(step, self.adapters, strict=True)):
            if not adapter.active:
                continue
            why = adapter.watch.update(float(token_sums[s]) / max(int(targets(sub)), 1))
            if why is not None:
                adapter.result.diverged = True
                adapter.result.diverged_at = f"epoch {epoch}, step {micro} ({why})"
                self._end_member(adapter.member)

    def _end_member(self, member: int) -> None:
        for adapter in self.adapters:
            if adapter.member == member:
                adapter.active = False

    def close(self, epoch: int, loaders: EvalLoaders) -> bool:
        """Each active adapter's epoch measured, checkpointed and reported as its own run's;
        False when none goes on (each stopped, diverged, or its trial pruned)."""
        validation = self._validation_losses(loaders.validation)
        for s, adapter in enumerate(self.adapters):
            member = self.members[adapter.member]
            if not adapter.active:
                continue
            if member.stopped is not None and member.stopped():  # its trial was pruned
                self._end_member(adapter.member)
                continue
            model = self.stack.seed_model(s)
            metrics = self.runner.measure_epoch(
                model,
                loaders,
                epoch=epoch,
                train_loss=adapter.train_loss,
                learning_rate=adapter.scheduler.get_last_lr()[0],
                eval_loss=validation[s],
            )
            index = list(member.seeds).index(adapter.seed)
            adapter.active = self.runner.close_epoch(
                model,
                metrics,
                adapter.result,
                member.on_epoch[index],
                checkpoint_dir=adapter.checkpoints,
            )
            if adapter.result.diverged or (member.stopped is not None and member.stopped()):
                self._end_member(adapter.member)
        self.stack.stacked()
        return self.running()

    def _validation_losses(self, loader: Any) -> list[float]:
        """Every adapter's validation loss in one pass: each batch repeated once per adapter
        through the stack, each adapter's mean over all response tokens of the split (as
        ``evaluate_loss`` measures one model)."""
        model, k = self.stack.stacked(), len(self.adapters)
        model.eval()
        sums = torch.zeros(k, dtype=torch.float64, device=self.accelerator.device)
        tokens = 0
        with torch.no_grad():
            for batch in loader:
                raise_if_interrupted()
                ids, mask = batch["input_ids"].repeat(k, 1), batch["attention_mask"].repeat(k, 1)
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                # the labels shifted, not the logits (no copy of them), as in training
                labels = torch.nn.functional.pad(batch["labels"][:, 1:], (0, 1), value=-100)
                token_losses = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    labels.repeat(k, 1).reshape(-1),
                    reduction="none",
                )
                sums += token_losses.reshape(k, -1).sum(dim=1).double()
                tokens += int((batch["labels"][:, 1:] != -100).sum())
        model.train()
        return [float(total) / max(tokens, 1) for total in sums]
