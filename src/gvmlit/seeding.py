"""One run seed; every other seed of a run derived from it by one rule.

The run seed is ``seed_everything``'s (``seed_everything: 3`` in a recipe, ``--seed_everything 3``, or
``lightning.seed_everything(3)`` in Python; without one, torch's initial seed). Every component whose
randomness matters takes a ``seed`` argument that defaults to None, meaning *derive it from the run
seed*; a number given there is an explicit override. The rule::

    derived seed of NAME = crc32("<run seed>:<NAME>")

with these names:

==================  ========================================================================
``data.order``      the order prompts are taken in each epoch, refill and candidate prompts,
                    the shuffling of mini-batches (``RolloutDataModule.seed``)
``data.pool``       the training pool of a generated task (``GeneratedTask.seed``; its
                    validation and test problems come from ``eval_seed`` and never move)
``sampler``         an engine's own sampling seed (``VLLMSampler.seed``; HFSampler draws on
                    the learner's per-epoch stream ``train:<epoch>``, itself keyed on the run seed)
``allocator``       an allocator's own random decisions (GRESO's skips, ``SelectiveRolloutAllocator.seed``)
``policy.init``     the initial weights of a model built from a config (``TinyCharPolicy.seed``)
==================  ========================================================================

So ``--seed_everything 1`` and ``--seed_everything 2`` train on different pools, in different orders,
with different samples; the same seed twice reproduces a run exactly.
"""

from __future__ import annotations

import os
import zlib

import torch


def run_seed() -> int:
    """The run seed: ``seed_everything``'s (``PL_GLOBAL_SEED``), else torch's initial seed; under several
    processes rank 0's, so that every rank derives the same seeds."""
    import torch.distributed as dist

    seed = os.environ.get("PL_GLOBAL_SEED")
    value = [int(seed) if seed is not None else torch.initial_seed() % (1 << 32)]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast_object_list(value, src=0)
    return int(value[0])


def derive(run_seed: int, name: str) -> int:
    """The seed of ``name`` in a run seeded ``run_seed`` (see the table above)."""
    return zlib.crc32(f"{run_seed}:{name}".encode())


class RunSeeded:
    """Mix-in for a component whose randomness comes from the run seed unless its own ``seed`` is set.

    Its owner (the learner or the data module) calls :meth:`use_run_seed` once the run seed is known;
    the component then reads :attr:`resolved_seed`.
    """

    #: the name of this component's seed in the derivation rule
    seed_name: str = ""
    seed: int | None = None

    def use_run_seed(self, seed_of_run: int) -> None:
        self._resolved_seed = self.seed if self.seed is not None else derive(seed_of_run, self.seed_name)

    @property
    def resolved_seed(self) -> int:
        """The explicit ``seed``, else the one derived from the run seed (from seed 0 before the run starts)."""
        resolved = getattr(self, "_resolved_seed", None)
        if resolved is None:
            return self.seed if self.seed is not None else derive(0, self.seed_name)
        return resolved
