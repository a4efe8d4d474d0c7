"""The epoch's training sequences, and the two iterable datasets the data module serves.

The learner fills an :class:`EpochBuffer` at the start of every epoch (its own hook); the data module's
training loader iterates :class:`EpochBatches` over that buffer. The loader is built once and never
reloaded, so a plain ``lightning.Trainer`` with its default arguments trains on fresh rollouts every
epoch (as Lightning's RL examples serve an experience buffer through an ``IterableDataset``). Lightning
leaves iterable datasets alone under several processes (no distributed sampler is injected): every
rank's buffer already holds that rank's share.

The loader yields light :class:`BatchRef` objects — "mini-batch k of this epoch" — and the data module
turns each into tensors in its ``on_before_batch_transfer`` hook, just before the step uses it. Lightning
fetches one batch ahead, and before the very first epoch it does so before any epoch hook has run: a
reference fetched then still names the right mini-batch once the learner has filled the buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import IterableDataset

from gvmlit.records import Prompt, Rollout


@dataclass
class EpochBuffer:
    """The sequences this rank trains on in ``epoch`` (−1: nothing collected yet)."""

    epoch: int = -1
    rollouts: list[Rollout] = field(default_factory=list)

    def fill(self, epoch: int, rollouts: list[Rollout]) -> None:
        self.epoch, self.rollouts = epoch, list(rollouts)


@dataclass(frozen=True)
class BatchRef:
    """Mini-batch ``index`` of the current epoch's buffer (see the module docstring)."""

    index: int


class EpochBatches(IterableDataset):
    """The buffer's sequences as shuffled mini-batches of ``batch_size``, ``passes`` passes over them
    (each pass a fresh permutation seeded by (``seed``, epoch); the last batch of a pass may be short).
    An empty buffer gives one empty batch, which the learner skips: the epoch still ends normally and is
    evaluated, and the run goes on. Iterating yields :class:`BatchRef`; :meth:`batch` makes the tensors."""

    def __init__(self, buffer: EpochBuffer, batch_size: int, passes: int, seed: Callable[[], int], collate: Callable[[list[Rollout]], dict]) -> None:
        self.buffer, self.batch_size, self.passes, self.seed, self.collate = buffer, batch_size, passes, seed, collate
        self._orders: tuple[int, int, list[list[int]]] | None = None  # (epoch, size, the epoch's batches)

    def batches(self) -> list[list[int]]:
        """The epoch's mini-batches as indices into the buffer (one empty batch for an empty buffer)."""
        size, epoch = len(self.buffer.rollouts), self.buffer.epoch
        if self._orders is None or self._orders[:2] != (epoch, size):
            generator = torch.Generator().manual_seed(self.seed() * 100_003 + max(epoch, 0))
            batches = []
            for _ in range(self.passes if size else 0):
                order = torch.randperm(size, generator=generator).tolist()
                batches += [order[start : start + self.batch_size] for start in range(0, size, self.batch_size)]
            self._orders = (epoch, size, batches or [[]])
        return self._orders[2]

    def __iter__(self) -> Iterator[BatchRef]:
        index = 0
        while index < len(self.batches()):  # read anew at every step: the buffer may be filled after the first fetch
            yield BatchRef(index)
            index += 1

    def batch(self, ref: BatchRef) -> dict[str, torch.Tensor]:
        rollouts = self.buffer.rollouts
        return self.collate([rollouts[i] for i in self.batches()[ref.index]])


class RankPrompts(IterableDataset):
    """Evaluation problems in batches of ``batch_size``, this rank's contiguous share only: ranks get
    ⌈n / ranks⌉ problems each, the last ones fewer, and no problem twice (Lightning's distributed sampler
    would repeat problems to even the shares out, which biases every metric)."""

    def __init__(self, prompts: list[Prompt], batch_size: int, world: Callable[[], tuple[int, int]]) -> None:
        self.prompts, self.batch_size, self.world = prompts, batch_size, world

    def share(self) -> list[Prompt]:
        rank, size = self.world()
        per_rank = -(-len(self.prompts) // size)
        return self.prompts[rank * per_rank : (rank + 1) * per_rank]

    def __iter__(self) -> Iterator[list[Prompt]]:
        mine = self.share()
        for start in range(0, len(mine), self.batch_size):
            yield mine[start : start + self.batch_size]
