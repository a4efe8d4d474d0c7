"""PilotCommitAllocator: Pilot-Commit as published (Kim et al., "Spend Your Rollouts Where It Counts",
arXiv:2605.26606; official code github.com/databricks/pilot-commit, ``recipe/pc/``).

Each prompt's budget of s samples (the epoch's samples per prompt) is split into a *pilot* of
``pilot_fraction`` · s samples (published: 32 of 128) and a *commit* of the rest (96 of 128), both
counted. Per round:

1. **Pilot.** Every candidate prompt draws its pilot samples. The published trainer screens a
   generation batch ``screen_ratio`` = 3 times its training batch; under gvmlit's epoch budget N that
   ratio is kept by screening ``candidates`` = ppe / (f + (1 − f)/3) prompts (2 × ppe at f = 1/4), so that
   the pilots of all of them plus the commits of a third of them cost N.
2. **Select.** A prompt whose pilot accuracy a lies in [``lower``, 1 − ``upper``] = [0.125, 0.75] passes;
   above, it is too easy and skipped; below, too hard and deferred (it returns when the data does).
   A prompt whose accuracy reaches ``evict_at`` (1.0) on as much evidence as the published pilot
   (``evict_samples`` = 32: its most recent 32 samples, pooled over its visits) is evicted: never
   piloted again. (The published rule reads one pilot of 32; applied to a pilot of 2 it would evict a
   prompt at p = 0.6 a third of the time, and in a small pool that comes back it evicts every solvable
   prompt within a few epochs: docs/peers.md.)
3. **Commit.** Passing prompts are committed in order of pilot variance a(1 − a), largest first
   (published ``max_variance``), each drawing the rest of its budget, as long as the round's budget
   allows. The group it trains on is its pilots plus its commit (``keep_pilots``).
4. **Keep generating.** If budget is left, another round screens ``Allocation.refill`` further
   candidates in the same proportion (the published trainer generates further batches until its
   training batch is full).

With s = 8 (gvmlit's recipes) the pilot is 2 samples, so a prompt passes exactly when its two pilots
disagree: "commit the rest to prompts whose pilots were mixed". docs/peers.md lists where this departs
from the publication (no replay buffer across steps; uncommitted pilots are trained on).
"""

from __future__ import annotations

import math

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator, PilotRequest
from gvmlit.allocation.knapsack import pooled_success_rate
from gvmlit.errors import GvmlitError


class PilotCommitAllocator(BudgetAllocator):
    """Pilot every candidate, commit the rest of its budget to those whose pilots were mixed.

    Args:
        pilot_fraction: f, the share of a prompt's budget spent on its pilot (published 32 / 128).
        screen_ratio: candidates screened per committed prompt (published: a generation batch 3 × the
            training batch).
        lower: least pilot accuracy to pass (published ``diversity_threshold_lower`` 0.125).
        upper: a pilot accuracy above 1 − upper is too easy (published ``diversity_threshold_upper`` 0.25).
        evict_at: an accuracy at or above this evicts the prompt from future epochs (published
            ``exclude_threshold_upper`` 1.0; None: never).
        evict_samples: the evidence eviction needs: the prompt's most recent samples, at least this many
            (the published pilot of 32).
    """

    name = "pilot_commit"
    keep_pilots = True

    def __init__(
        self,
        pilot_fraction: float = 0.25,
        screen_ratio: float = 3.0,
        lower: float = 0.125,
        upper: float = 0.25,
        evict_at: float | None = 1.0,
        evict_samples: int = 32,
    ) -> None:
        if not 0 < pilot_fraction < 1 or screen_ratio < 1 or not 0 <= lower <= 1 - upper <= 1:
            raise GvmlitError("PilotCommitAllocator needs 0 < pilot_fraction < 1, screen_ratio ≥ 1 and 0 ≤ lower ≤ 1 − upper ≤ 1")
        self.pilot_fraction, self.screen_ratio, self.lower, self.upper, self.evict_at = pilot_fraction, screen_ratio, lower, upper, evict_at
        self.evict_samples = evict_samples
        self._per_epoch: int | None = None  # prompts_per_epoch, from candidates()
        self._per_prompt: float | None = None  # s, from the epoch's first round
        self._evicted: set[str] = set()

    # ------------------------------------------------------------------ sizes
    def screened(self, samples: float, per_prompt: float) -> int:
        """Candidates that a budget of ``samples`` screens: their pilots plus the commits of 1/screen_ratio
        of them cost ``samples``."""
        f = self.pilot_fraction
        return max(1, math.ceil(samples / (per_prompt * (f + (1 - f) / self.screen_ratio)) - 1e-9))

    def pilot_size(self, per_prompt: float) -> int:
        return max(1, min(int(round(self.pilot_fraction * per_prompt)), int(per_prompt) - 1))

    def candidates(self, prompts_per_epoch: int) -> int:
        self._per_epoch = prompts_per_epoch
        f = self.pilot_fraction
        return max(prompts_per_epoch, math.ceil(prompts_per_epoch / (f + (1 - f) / self.screen_ratio) - 1e-9))

    # ------------------------------------------------------------------ the rounds
    def plan_pilots(self, request: PilotRequest) -> list[int]:
        if request.stage > 0:
            return [0] * len(request.prompts)
        if request.round == 0 or self._per_prompt is None:
            self._per_prompt = request.budget / (self._per_epoch or len(request.prompts))
        size = self.pilot_size(self._per_prompt)
        plan = [0 if p.uid in self._evicted else size for p in request.prompts]
        while sum(plan) > request.budget:  # a small last round: pilot as many as the budget pays for
            plan[max(i for i, n in enumerate(plan) if n)] = 0
        return plan

    def allocate(self, request: AllocationRequest) -> Allocation:
        count = len(request.prompts)
        if count == 0:
            return Allocation(np.zeros(0, dtype=np.int64))
        per_prompt = self._per_prompt or (request.epoch_budget or request.budget) / (request.target_prompts or count)
        pilots, successes = request.pilot_counts, request.pilot_successes
        accuracy = np.where(pilots > 0, successes / np.maximum(pilots, 1), np.nan)
        passed = (pilots > 0) & (accuracy >= self.lower) & (accuracy <= 1 - self.upper)
        if self.evict_at is not None:
            for prompt in request.prompts:
                rate, samples = pooled_success_rate(request.store, prompt.uid, self.evict_samples)
                if samples >= self.evict_samples and rate >= self.evict_at:
                    self._evicted.add(prompt.uid)
        commit = max(int(round(per_prompt)) - self.pilot_size(per_prompt), 1)
        budget = self.main_budget(request)
        samples = np.zeros(count, dtype=np.int64)
        variance = np.where(passed, accuracy * (1 - accuracy), -1.0)
        for i in np.argsort(-variance, kind="stable"):  # largest pilot variance first
            if not passed[i] or budget < commit:
                break
            samples[i], budget = commit, budget - commit
        refill = self.screened(budget, per_prompt) if budget >= self.pilot_size(per_prompt) + commit else 0
        metrics = {
            "pilot_pass_rate": float(passed[pilots > 0].mean()) if (pilots > 0).any() else 0.0,
            "committed_prompts": float((samples > 0).sum()),
            "evicted_prompts": float(len(self._evicted)),
        }
        return Allocation(samples, acceptance_rate=accuracy, metrics=metrics, refill=refill)

    def state_dict(self) -> dict:
        return {"evicted": sorted(self._evicted)}

    def load_state_dict(self, state: dict) -> None:
        self._evicted = set(state.get("evicted", []))
