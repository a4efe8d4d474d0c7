"""KnapsackAllocator: Knapsack RL's allocation (Li et al., arXiv:2509.25849; docs/method.md §7, eq. 12).

Each prompt is a knapsack item: n samples cost n and are worth V(n, p̂) = [1 − p̂^n − (1 − p̂)^n] · p̂(1 − p̂)²,
the chance that its GRPO group carries a gradient times an information gain. Σ V is maximised under
the budget by greedy marginal gains (:func:`~gvmlit.allocation.rules.greedy_knapsack`). p̂ is the
prompt's success rate on its last visit, read from the store; no pilots are drawn.

What V gives nothing to: a prompt never seen (its p̂ is unknown) gets ``unseen_samples`` to learn it;
a prompt last seen at p̂ = 0 or 1 gets ``fallback_samples`` so that its p̂ can move, and whatever the
valuable prompts cannot use (all at ``max_samples``) goes to the unsolved ones (p̂ = 0), as the paper's
fallback does. Our reading of the paper, not its code.
"""

from __future__ import annotations

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator
from gvmlit.allocation.rules import greedy_knapsack, knapsack_value, round_to_budget
from gvmlit.errors import GvmlitError


class KnapsackAllocator(BudgetAllocator):
    """Knapsack RL: n_i maximising Σ_i V(n_i, p̂_i) under the budget.

    Args:
        max_samples: most samples one prompt gets in an epoch.
        unseen_samples: samples for a prompt seen for the first time (None: the uniform share N / prompts).
        fallback_samples: samples for a prompt last seen all correct or all wrong (p̂ = 0 or 1).
    """

    def __init__(self, max_samples: int = 32, unseen_samples: int | None = None, fallback_samples: int = 2) -> None:
        if max_samples < 2 or fallback_samples < 0 or (unseen_samples is not None and unseen_samples < 0):
            raise GvmlitError("KnapsackAllocator needs max_samples ≥ 2, fallback_samples ≥ 0 and unseen_samples ≥ 0")
        self.max_samples = max_samples
        self.unseen_samples = unseen_samples
        self.fallback_samples = fallback_samples

    def allocate(self, request: AllocationRequest) -> Allocation:
        count, budget = len(request.prompts), self.main_budget(request)
        if count == 0:
            return Allocation(np.zeros(0, dtype=np.int64))
        last = [request.store.last_acceptance_rate(p.uid) for p in request.prompts]
        unseen = np.array([p is None for p in last])
        p_hat = np.array([0.0 if p is None else p for p in last])
        extreme = ~unseen & ((p_hat == 0.0) | (p_hat == 1.0))
        valued = ~unseen & ~extreme
        # first what V cannot price: unseen prompts, then the fallback share of p̂ ∈ {0, 1} prompts
        floor = np.zeros(count, dtype=np.int64)
        floor[unseen] = budget // count if self.unseen_samples is None else self.unseen_samples
        floor[extreme] = self.fallback_samples
        floor = np.minimum(floor, self.max_samples)
        if floor.sum() > budget:  # the floors alone exceed the budget: share it in their proportion
            floor = round_to_budget(floor.astype(float), budget)
        value = lambda n: np.where(valued, knapsack_value(n, p_hat), 0.0)  # noqa: E731
        samples = greedy_knapsack(value, count, budget, floor, np.where(valued, self.max_samples, floor))
        left = budget - int(samples.sum())
        unsolved = ~unseen & (p_hat == 0.0)
        if left > 0 and unsolved.any():  # the paper's fallback: what the valuable prompts cannot use
            room = np.where(unsolved, self.max_samples - samples, 0)
            samples += np.minimum(room, round_to_budget(np.where(room > 0, 1.0, 0.0), min(left, int(room.sum())))) if room.sum() else 0
        metrics = {
            "unseen_prompts": float(unseen.sum()),
            "extreme_prompts": float(extreme.sum()),
            "expected_value": float(knapsack_value(samples, p_hat)[valued].sum()),
        }
        return Allocation(samples.astype(np.int64), acceptance_rate=np.where(unseen, np.nan, p_hat), metrics=metrics)
