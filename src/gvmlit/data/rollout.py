"""RolloutDataModule: prompts, splits and batching — nothing else.

It turns the prompt source into token ids (template, system prompt, chat template), picks each
epoch's prompts, and batches what the learner hands back. It never reaches into the model: the
learner gives it, through :meth:`RolloutDataModule.connect`, the tokenizer, the longest prompt the
model accepts and the function that produces an epoch's rollouts (``collect_epoch``, the E-step).
Each epoch (the CLI sets ``reload_dataloaders_every_n_epochs=1``)::

    epoch_prompts(epoch) → collect_epoch(prompts, epoch, refill_prompts) → EpochRollouts → batches(rollouts) → DataLoader
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Literal

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, RandomSampler

from gvmlit.collate import collate_rollouts
from gvmlit.data.arithmetic import ArithmeticTask
from gvmlit.data.prompts import encode_prompt, record_name
from gvmlit.data.sources import PromptSource
from gvmlit.errors import GvmlitError
from gvmlit.records import Prompt, PromptRecord, Rollout

log = logging.getLogger("gvmlit")


class RolloutDataModule(LightningDataModule):
    """The epoch's prompts in, the epoch's weighted rollouts batched out.

    Args:
        source: where training problems come from (default: the built-in ``ArithmeticTask``).
        eval_source: where validation / test problems come from (default: ``source``), e.g.
            ``BenchmarkFiles`` for MATH-500, AIME24, … reported per benchmark.
        prompts_per_epoch: prompts taken from the training split each epoch (one EM iteration's prompts).
        batch_size: rollouts per optimiser step (mini-batch; per rank under several processes).
        update_epochs: passes over each epoch's rollouts (several optimiser steps per rollout batch).
        prompt_template: Python format string applied to each problem (``{problem}``).
        system_prompt: system message, used when the policy applies a chat template.
        overlong_prompts: prompts too long for the model with the sampler's ``max_new_tokens``:
            ``error`` or ``skip`` (a warning says how many were skipped).
        val_size: held-out problems evaluated each epoch (None = the whole validation split).
        val_batch_size: evaluation problems per batch.
        seed: seed of the prompt order and of the batch order.
    """

    def __init__(
        self,
        source: PromptSource | None = None,
        eval_source: PromptSource | None = None,
        prompts_per_epoch: PositiveInt = 64,
        batch_size: PositiveInt = 64,
        update_epochs: PositiveInt = 1,
        prompt_template: str = "{problem}",
        system_prompt: str | None = None,
        overlong_prompts: Literal["error", "skip"] = "error",
        val_size: PositiveInt | None = None,
        val_batch_size: PositiveInt = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if "{problem}" not in prompt_template:
            raise GvmlitError(f"data.prompt_template must contain '{{problem}}', got {prompt_template!r}")
        self.source = source if source is not None else ArithmeticTask()
        self.eval_source = eval_source if eval_source is not None else self.source
        self.prompts_per_epoch, self.batch_size, self.update_epochs = prompts_per_epoch, batch_size, update_epochs
        self.prompt_template, self.system_prompt = prompt_template, system_prompt
        self.overlong_prompts = overlong_prompts
        self.val_size, self.val_batch_size, self.seed = val_size, val_batch_size, seed
        self.skipped_prompts = 0
        self._tokenizer, self._chat_template, self._max_prompt_tokens = None, False, 1 << 30
        self._collect_epoch: Callable | None = None
        self._encoded: dict[str, Prompt] = {}
        self._train: list[Prompt] | None = None
        self._epoch_loader: tuple[int, DataLoader] | None = None

    def connect(self, tokenizer, *, chat_template: bool, max_prompt_tokens: int, collect_epoch: Callable | None = None) -> None:
        """What the learner provides: its tokenizer, whether prompts go through its chat template, the
        longest prompt its model takes with a full response, and the epoch's E-step."""
        self._tokenizer, self._chat_template, self._max_prompt_tokens = tokenizer, chat_template, max_prompt_tokens
        self._collect_epoch = collect_epoch

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1 and trainer._accelerator_connector.use_distributed_sampler:
            raise GvmlitError("the learner splits rollouts across ranks itself: set trainer.use_distributed_sampler=false (the CLI's default)")

    # ------------------------------------------------------------------ prompts
    def encode(self, record: PromptRecord) -> Prompt:
        """The token ids of ``record``'s prompt (template, system prompt, chat template applied), cached."""
        if record.uid not in self._encoded:
            if self._tokenizer is None:
                raise RuntimeError("RolloutDataModule.connect(...) must be called (by the learner) before prompts are encoded")
            ids = encode_prompt(record, self.prompt_template, self.system_prompt, self._tokenizer, self._chat_template)
            self._encoded[record.uid] = Prompt(record, ids)
        return self._encoded[record.uid]

    def _fits(self, prompt: Prompt) -> bool:
        if len(prompt.token_ids) <= self._max_prompt_tokens:
            return True
        if self.overlong_prompts == "error":
            raise GvmlitError(
                f"prompt {record_name(prompt.record)} has {len(prompt.token_ids)} tokens; with the "
                f"sampler's max_new_tokens it exceeds the model's maximum length (set data.overlong_prompts=skip to drop such prompts)"
            )
        return False

    def train_prompts(self) -> list[Prompt]:
        if self._train is None:
            records = self.source.records("train")
            if not records:
                raise GvmlitError("the prompt source has no training prompts")
            self._train = [p for p in map(self.encode, records) if self._fits(p)]
            self.skipped_prompts = len(records) - len(self._train)
            if self.skipped_prompts:
                log.warning("skipped %d of %d training prompts longer than the limit", self.skipped_prompts, len(records))
            if len(self._train) < self.prompts_per_epoch:
                raise GvmlitError(f"data.prompts_per_epoch={self.prompts_per_epoch} but only {len(self._train)} training prompts are usable")
        return self._train

    def epoch_prompts(self, epoch: int) -> list[Prompt]:
        """The prompts of ``epoch``: consecutive slices of seeded permutations of the training split."""
        return self._stream([self.seed], range(epoch * self.prompts_per_epoch, (epoch + 1) * self.prompts_per_epoch))

    def refill_prompts(self, epoch: int, round: int, count: int) -> list[Prompt]:
        """``count`` further prompts for refill round ``round`` of ``epoch`` (dynamic sampling), from a
        stream of their own so that they never shift later epochs' prompts."""
        return self._stream([self.seed, 1 + epoch, 1 + round], range(count))

    def _stream(self, key: list[int], positions: range) -> list[Prompt]:
        prompts = self.train_prompts()
        n, orders = len(prompts), {}
        for g in positions:
            if g // n not in orders:
                orders[g // n] = np.random.default_rng([*key, g // n]).permutation(n)
        return [prompts[orders[g // n][g % n]] for g in positions]

    # ------------------------------------------------------------------ batches
    @property
    def epoch(self) -> int:
        """The epoch about to be trained (Lightning's ``current_epoch`` still names the last completed one
        when a resumed run first asks for its loader; ``processed`` is already right)."""
        return self.trainer.fit_loop.epoch_progress.current.processed

    def train_dataloader(self) -> DataLoader:
        epoch = self.epoch
        if self._epoch_loader is None or self._epoch_loader[0] != epoch:  # a resumed run asks twice: sample once
            done = self.trainer.fit_loop.done  # Lightning asks for a loader even when resuming a finished run
            self._epoch_loader = (epoch, self.batches([] if done else self.epoch_rollouts(epoch), epoch))
        return self._epoch_loader[1]

    def epoch_rollouts(self, epoch: int) -> list[Rollout]:
        if self._collect_epoch is None:
            raise RuntimeError("RolloutDataModule needs a rollout learner (gvmlit.algorithms.RAFT, GRPO) to train")
        return self._collect_epoch(self.epoch_prompts(epoch), epoch, partial(self.refill_prompts, epoch)).rollouts

    def batches(self, rollouts: list[Rollout], epoch: int) -> DataLoader:
        """Shuffled mini-batches of ``batch_size`` over ``update_epochs`` passes. No rollouts: one empty
        batch, which the learner skips (Lightning would end the whole run on an empty loader)."""
        collate = partial(collate_rollouts, pad_id=self._tokenizer.pad_token_id)
        # loaders draw a base seed from their generator at every iter(): their own, never the global stream
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        if not rollouts:
            return DataLoader([[]], batch_size=None, collate_fn=collate, generator=generator)
        order = RandomSampler(rollouts, num_samples=len(rollouts) * self.update_epochs, generator=generator)
        return DataLoader(rollouts, batch_size=self.batch_size, sampler=order, collate_fn=collate, generator=generator)

    def _evaluation_loader(self, split: str) -> DataLoader:
        records = self.eval_source.records(split)[: self.val_size]
        prompts = [self.encode(r) for r in records]
        return DataLoader(prompts, batch_size=self.val_batch_size, collate_fn=list, generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")
