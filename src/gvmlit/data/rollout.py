"""RolloutDataModule: prompts, splits and batching — nothing else.

It turns the prompt source into token ids (template, system prompt, chat template), hands the learner
the prompts it asks for, and serves what the learner put in the epoch's buffer. It never calls the
learner and never reads the Trainer's loop state: the learner gives it, through
:meth:`RolloutDataModule.connect`, its tokenizer, the longest prompt its model accepts and the
:class:`~gvmlit.data.buffer.EpochBuffer` it fills. One epoch, seen from here::

    learner (its on_train_epoch_start):  data.epoch_prompts(epoch) [+ data.more_prompts(epoch, round, k)]
                                         → … the E-step … → buffer.fill(epoch, rollouts)
    Lightning iterates the train loader: EpochBatches(buffer) → BatchRef k → (on_before_batch_transfer) tensors

Prompt order: the epoch's prompts are consecutive slices of seeded permutations of the training split;
candidate and refill prompts come from streams of their own (keyed on the epoch and the round), so they
never shift later epochs' prompts. The seed is derived from the run seed (gvmlit.seeding) unless given.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Literal

import numpy as np
from jsonargparse.typing import PositiveInt
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from gvmlit.collate import collate_rollouts
from gvmlit.data.arithmetic import ArithmeticTask
from gvmlit.data.buffer import BatchRef, EpochBatches, EpochBuffer, RankPrompts
from gvmlit.data.prompts import encode_prompt, record_name
from gvmlit.data.sources import PromptSource
from gvmlit.errors import GvmlitError
from gvmlit.parallel import world
from gvmlit.records import Prompt, PromptRecord
from gvmlit.seeding import RunSeeded, run_seed

log = logging.getLogger("gvmlit")


class RolloutDataModule(RunSeeded, LightningDataModule):
    """The epoch's prompts out, the epoch's weighted rollouts batched in.

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
        test_size: problems ``gvmlit test`` evaluates (None = the whole test split).
        val_batch_size: evaluation problems per batch.
        seed: seed of the prompt order and of the batch order (None: derived from the run seed).
    """

    #: what this data module serves the learner: sequences the learner samples itself (``rollouts``) or
    #: the source's own demonstrations (``demonstrations``); learners refuse the other kind at start-up
    serves: Literal["rollouts", "demonstrations"] = "rollouts"
    seed_name = "data.order"

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
        seed: int | None = None,
        test_size: PositiveInt | None = None,
    ) -> None:
        super().__init__()
        if "{problem}" not in prompt_template:
            raise GvmlitError(f"data.prompt_template must contain '{{problem}}', got {prompt_template!r}")
        self.source = source if source is not None else ArithmeticTask()
        self.eval_source = eval_source if eval_source is not None else self.source
        self.prompts_per_epoch, self.batch_size, self.update_epochs = prompts_per_epoch, batch_size, update_epochs
        self.prompt_template, self.system_prompt = prompt_template, system_prompt
        self.overlong_prompts = overlong_prompts
        self.val_size, self.test_size, self.val_batch_size, self.seed = val_size, test_size, val_batch_size, seed
        self.skipped_prompts = 0
        self._tokenizer, self._chat_template, self._max_prompt_tokens = None, False, 1 << 30
        self._buffer: EpochBuffer | None = None
        self._batches: EpochBatches | None = None
        self._encoded: dict[str, Prompt] = {}
        self._train: list[Prompt] | None = None
        self._fitting = False

    def connect(self, tokenizer, *, chat_template: bool, max_prompt_tokens: int, buffer: EpochBuffer) -> None:
        """What the learner provides: its tokenizer, whether prompts go through its chat template, the
        longest prompt its model takes with a full response, and the buffer it fills every epoch."""
        self._tokenizer, self._chat_template, self._max_prompt_tokens = tokenizer, chat_template, max_prompt_tokens
        self._buffer = buffer
        if self._fitting:  # every training prompt encoded and checked now, before the starting policy is evaluated
            self.train_prompts()

    def setup(self, stage: str) -> None:
        """The run seed reaches the order of prompts and the source's generated pool (gvmlit.seeding); the
        data is read now, before any model is built, so that a malformed file is the first thing reported."""
        seed = run_seed()
        self.use_run_seed(seed)
        for source in {id(s): s for s in (self.source, self.eval_source)}.values():
            if isinstance(source, RunSeeded):
                source.use_run_seed(seed)
        self._train = None  # the pool may have moved with the seed
        self._fitting = stage == "fit"
        if stage == "fit":
            self.source.records("train")
        self.eval_source.records("test" if stage == "test" else "val")

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
                f"prompt {record_name(prompt.record)} has {len(prompt.token_ids)} tokens; with the sampler's max_new_tokens it "
                f"exceeds the model's maximum length ({self._max_prompt_tokens} prompt tokens fit; set data.overlong_prompts=skip "
                f"to drop such prompts)"
            )
        return False

    def train_prompts(self) -> list[Prompt]:
        """The usable training split, encoded."""
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
        """The ``prompts_per_epoch`` prompts of ``epoch``: consecutive slices of seeded permutations of the
        training split (every prompt once before any comes back)."""
        return self._stream([self.resolved_seed], range(epoch * self.prompts_per_epoch, (epoch + 1) * self.prompts_per_epoch))

    def more_prompts(self, epoch: int, round: int, count: int, exclude: frozenset[str] | set[str] = frozenset()) -> list[Prompt]:
        """``count`` further prompts for round ``round`` of ``epoch`` (candidates an allocator screens in
        round 0, refills in later rounds), none of them in ``exclude`` (the epoch's prompts so far), from a
        stream of their own: they never shift other epochs' prompts, and the same call gives the same prompts
        (exact resume, equal arms). Fewer when the training split has fewer prompts left."""
        order = self._stream([self.resolved_seed, 1 + epoch, 1 + round], range(len(self.train_prompts())))
        fresh = [p for p in order if p.record.uid not in exclude]
        return fresh[:count]

    def _stream(self, key: list[int], positions: range) -> list[Prompt]:
        prompts = self.train_prompts()
        n, orders = len(prompts), {}
        for g in positions:
            if g // n not in orders:
                orders[g // n] = np.random.default_rng([*key, g // n]).permutation(n)
        return [prompts[orders[g // n][g % n]] for g in positions]

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        """Shuffled mini-batches of whatever the learner put in its buffer this epoch (``update_epochs``
        passes); built once, read anew every epoch."""
        if self._buffer is None:
            raise GvmlitError(f"{type(self).__name__} serves a gvmlit learner (gvmlit.algorithms.RAFT, GRPO or SFT), which connects to it; got none")
        collate = partial(collate_rollouts, pad_id=self._tokenizer.pad_token_id)
        self._batches = EpochBatches(self._buffer, self.batch_size, self.update_epochs, lambda: self.resolved_seed, collate)
        return DataLoader(self._batches, batch_size=None)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        """A training loader's :class:`~gvmlit.data.buffer.BatchRef` becomes its tensors here, from the buffer
        as the learner filled it this epoch."""
        return self._batches.batch(batch) if isinstance(batch, BatchRef) else batch

    def evaluation_prompts(self, split: str) -> list[Prompt]:
        """The held-out problems of ``split`` (``val`` or ``test``; the first ``val_size`` / ``test_size``), encoded;
        they never move with the run seed."""
        size = self.test_size if split == "test" else self.val_size
        return [self.encode(r) for r in self.eval_source.records(split)[:size]]

    def _evaluation_loader(self, split: str) -> DataLoader:
        return DataLoader(RankPrompts(self.evaluation_prompts(split), self.val_batch_size, world), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")
