"""SelectiveRolloutAllocator: GRESO-style pre-rollout skipping (Zheng et al., arXiv:2506.02177;
docs/method.md §7). Our reading of the paper, not its code.

A prompt whose samples were all correct or all wrong on each of its last z visits (its zero-variance
streak, read from the store) is skipped this epoch with probability 1 − p_e^z: prompts that taught
nothing lately probably teach nothing now, and the exploration probability p_e keeps them from being
dropped forever. p_e is kept apart for easy prompts (all correct) and hard ones (all wrong) and
adapted each epoch: when more than half of ``target_zero_variance`` of the last epoch's sampled prompts
were zero-variance of a kind (the target split evenly between easy and hard), that kind is explored
less, else more (by ``adapt_step``, within
[``min_exploration``, 1]). The other prompts get the uniform share N / prompts each (``save``, as
GRESO saves rollouts) or share the whole budget (``refill``). Skipping decisions are seeded by
(seed, epoch, prompt), so every rank and a resumed run make the same ones.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator
from gvmlit.allocation.rules import round_to_budget
from gvmlit.errors import GvmlitError
from gvmlit.seeding import RunSeeded


class SelectiveRolloutAllocator(RunSeeded, BudgetAllocator):
    """Skip prompts whose recent groups carried no gradient (GRESO).

    Args:
        exploration: p_e at the start, for easy and for hard prompts.
        target_zero_variance: share of zero-variance prompts (of each kind, among those sampled) that
            the adaptation of p_e aims at.
        adapt_step: change of p_e per epoch.
        min_exploration: p_e never goes below this (a skipped prompt always has a chance to return).
        spend: ``save`` — skipped prompts' samples are not drawn (the epoch generates less); ``refill``
            — the whole budget is shared by the prompts kept.
        seed: seed of the skipping decisions (None: derived from the run seed, gvmlit.seeding).
    """

    name = "greso"
    seed_name = "allocator"

    def __init__(
        self,
        exploration: float = 0.5,
        target_zero_variance: float = 0.25,
        adapt_step: float = 0.05,
        min_exploration: float = 0.05,
        spend: Literal["save", "refill"] = "save",
        seed: int | None = None,
    ) -> None:
        if not 0 < min_exploration <= exploration <= 1:
            raise GvmlitError("SelectiveRolloutAllocator needs 0 < min_exploration ≤ exploration ≤ 1")
        self.exploration = {"easy": exploration, "hard": exploration}
        self.target_zero_variance = target_zero_variance
        self.adapt_step = adapt_step
        self.min_exploration = min_exploration
        self.spend = spend
        self.seed = seed
        self._previous: tuple[int, list[str]] | None = None  # (epoch, uids) of the last allocation

    def allocate(self, request: AllocationRequest) -> Allocation:
        prompts, store, epoch = request.prompts, request.store, request.epoch
        count, budget = len(prompts), self.main_budget(request)
        if count == 0:
            return Allocation(np.zeros(0, dtype=np.int64))
        self._adapt(request)
        skip_probability = np.zeros(count)
        for i, prompt in enumerate(prompts):
            streak, rate = store.zero_variance_streak(prompt.uid), store.last_acceptance_rate(prompt.uid)
            kind = "easy" if rate == 1.0 else "hard"
            skip_probability[i] = 1.0 - self.exploration[kind] ** streak if streak else 0.0
        draws = np.array([np.random.default_rng([self.resolved_seed, epoch, zlib.crc32(p.uid.encode())]).random() for p in prompts])
        skipped = draws < skip_probability
        kept = ~skipped
        if not kept.any():
            samples = np.zeros(count, dtype=np.int64)
        elif self.spend == "refill":
            samples = round_to_budget(kept.astype(float), budget)
        else:  # each prompt's uniform share, not drawn for the skipped ones
            samples = round_to_budget(np.ones(count), budget) * kept
        self._previous = (epoch, [p.uid for p in prompts])
        metrics = {
            "skipped_prompts": float(skipped.mean()),
            "exploration_easy": self.exploration["easy"],
            "exploration_hard": self.exploration["hard"],
        }
        return Allocation(samples.astype(np.int64), metrics=metrics, histograms={"skip_probability": skip_probability})

    def _adapt(self, request: AllocationRequest) -> None:
        """Move p_e by the zero-variance share, per kind, of the prompts sampled at the last allocation."""
        if self._previous is None or self._previous[0] >= request.epoch:
            return
        epoch, uids = self._previous
        flat, sampled = {"easy": 0, "hard": 0}, 0
        for uid in uids:
            visits = request.store.history(uid).in_epoch(epoch)
            samples, accepted = sum(v.samples for v in visits), sum(v.accepted for v in visits)
            if samples < 2:
                continue
            sampled += 1
            if accepted in (0, samples):
                flat["easy" if accepted == samples else "hard"] += 1
        for kind, count in flat.items():
            if sampled:
                step = -self.adapt_step if count / sampled > self.target_zero_variance / 2 else self.adapt_step
                self.exploration[kind] = float(np.clip(self.exploration[kind] + step, self.min_exploration, 1.0))

    def state_dict(self) -> dict:
        return {"exploration": dict(self.exploration), "previous": list(self._previous) if self._previous else None}

    def load_state_dict(self, state: dict) -> None:
        self.exploration.update(state.get("exploration", {}))
        self._previous = tuple(state["previous"]) if state.get("previous") else None
