"""KnapsackAllocator: Knapsack RL as published (Li et al., arXiv:2509.25849; official code
github.com/liziniu/KnapsackRL, ``verl/trainer/ppo/exploration_utils.py`` and ``rl_dataset.py``).

Each prompt is a knapsack item: n samples cost n and are worth

    V(n, p) = P(the group is useful | n, p) · p (1 − p)²

(eq. 12 of the paper; for GRPO "useful" means not all correct and not all wrong, 1 − pⁿ − (1 − p)ⁿ).
The budget is filled in the published order:

1. **Floors.** A prompt whose success rate is not yet *trusted* — fewer than ``trust_after`` samples ever
   (the published ``min_buffer_length`` 8) — gets the uniform share N / prompts. A trusted prompt with
   0 < p̂ < 1 gets ``min_samples`` (2); one at p̂ = 0 ``unsolved_samples`` (2); one at p̂ = 1
   ``solved_samples`` (2).
2. **Fallback.** If the rest of the budget exceeds what the valuable prompts need — each needs
   ``log(1 − confidence) / log(max(p̂, 1 − p̂))`` samples to see a mixed group with probability
   ``confidence`` (0.9), at most its cap — the excess goes evenly to the unsolved prompts (p̂ = 0), or, if
   there are none, to the other prompts that are not valuable.
3. **Knapsack.** What is left is shared among the valuable prompts by maximising Σ V(n_i, p̂_i) with
   ``min_samples`` ≤ n_i ≤ cap (the published dynamic programme; V is concave in n, so giving one sample
   at a time to the largest marginal gain finds the same optimum); any remainder is spread evenly over them.

The cap is ``cap_factor`` × the epoch's samples per prompt: the published 128 at 8 samples per prompt.

p̂ is *pooled*: the mean of the prompt's last visit when that visit had ``window`` (16) samples or more,
else the mean of its most recent ``window`` rewards over its visits, newest first (the published
"robust epoch estimation"). gvmlit's store keeps counts per visit, not the order of samples within one,
so a visit that straddles the window contributes its successes pro rata.

With RAFT (``useful = accepted``) a group is useful when it holds one accepted sample: the value is then
[1 − (1 − p)ⁿ] · p (1 − p)² and the cost log(1 − confidence) / log(1 − p̂). docs/peers.md lists where this
departs from the publication.
"""

from __future__ import annotations

import math

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator
from gvmlit.allocation.rules import greedy_knapsack, round_to_budget
from gvmlit.allocation.store import PromptStatsStore
from gvmlit.errors import GvmlitError
from gvmlit.groups import UsefulGroup


def knapsack_rl_value(samples, acceptance_rate, useful: UsefulGroup = "mixed") -> np.ndarray:
    """V(n, p) = P(useful group of n | p) · p (1 − p)²: Knapsack RL's value (eq. 12), with RAFT's notion of
    a useful group (one accepted sample) when ``useful`` is ``accepted``."""
    n = np.asarray(samples, dtype=np.float64)
    p = np.asarray(acceptance_rate, dtype=np.float64)
    useful_probability = 1.0 - (1.0 - p) ** n if useful == "accepted" else 1.0 - p**n - (1.0 - p) ** n
    return useful_probability * p * (1.0 - p) ** 2


def pooled_success_rate(store: PromptStatsStore, uid: str, window: int) -> tuple[float | None, int]:
    """(p̂, samples ever drawn) of a prompt: the last visited epoch's success rate if it drew ``window``
    samples or more, else the success rate of its most recent ``window`` samples, newest epoch first (a
    visit that straddles the window counts pro rata); (None, 0) for a prompt never sampled."""
    history = store.history(uid)
    epochs = history.epochs()
    if not epochs:
        return None, 0
    groups = [store.epoch_group(uid, epoch) for epoch in reversed(epochs)]  # newest first
    samples, accepted = groups[0][0], groups[0][1]
    if samples < window:
        samples = accepted = 0.0
        for drawn, successes, _, _ in groups:
            take = min(drawn, window - samples)
            samples, accepted = samples + take, accepted + successes * take / drawn
            if samples >= window:
                break
    return float(accepted / samples), history.samples


class KnapsackAllocator(BudgetAllocator):
    """Knapsack RL: floors, fallback, then n_i maximising Σ_i V(n_i, p̂_i) (see the module docstring).

    Args:
        min_samples: samples of a trusted prompt with 0 < p̂ < 1 before the knapsack adds any (published 2).
        cap_factor: most samples a prompt gets, in units of the epoch's samples per prompt (published
            128 = 16 × 8).
        unsolved_samples: samples of a trusted prompt at p̂ = 0 (published ``negative_n`` 2).
        solved_samples: samples of a trusted prompt at p̂ = 1 (published ``positive_n`` 2).
        trust_after: p̂ is trusted once the prompt has this many samples (published ``min_buffer_length`` 8);
            before, it gets the uniform share.
        window: recent rewards pooled into p̂ (published ``reward_buffer_length`` 16).
        confidence: the chance of a useful group a valuable prompt's estimated need is sized for (published α 0.9).
        fallback: give the budget the valuable prompts do not need to the unsolved ones (published ``allow_fallback``).
    """

    name = "knapsack"

    def __init__(
        self,
        min_samples: int = 2,
        cap_factor: float = 16.0,
        unsolved_samples: int = 2,
        solved_samples: int = 2,
        trust_after: int = 8,
        window: int = 16,
        confidence: float = 0.9,
        fallback: bool = True,
    ) -> None:
        if min_samples < 1 or cap_factor <= 0 or unsolved_samples < 0 or solved_samples < 0 or trust_after < 0 or window < 1 or not 0 < confidence < 1:
            raise GvmlitError(
                "KnapsackAllocator needs min_samples ≥ 1, cap_factor > 0, unsolved_samples ≥ 0, solved_samples ≥ 0, "
                "trust_after ≥ 0, window ≥ 1 and 0 < confidence < 1"
            )
        self.min_samples, self.cap_factor = min_samples, cap_factor
        self.unsolved_samples, self.solved_samples = unsolved_samples, solved_samples
        self.trust_after, self.window, self.confidence, self.fallback = trust_after, window, confidence, fallback

    def allocate(self, request: AllocationRequest) -> Allocation:
        count, budget = len(request.prompts), self.main_budget(request)
        if count == 0:
            return Allocation(np.zeros(0, dtype=np.int64))
        per_prompt = (request.epoch_budget or request.budget) / (request.target_prompts or count)
        estimates = [pooled_success_rate(request.store, p.uid, self.window) for p in request.prompts]
        p_hat = np.array([np.nan if rate is None else rate for rate, _ in estimates])
        trusted = np.array([rate is not None and drawn >= self.trust_after for rate, drawn in estimates])
        samples, metrics = self.knapsack(p_hat, trusted, budget, per_prompt, request.useful)
        return Allocation(samples, acceptance_rate=np.where(trusted, p_hat, np.nan), metrics=metrics)

    def knapsack(self, p_hat: np.ndarray, trusted: np.ndarray, budget: int, per_prompt: float, useful: UsefulGroup = "mixed"):
        """(n_i, metrics) for success rates ``p_hat`` (those not ``trusted`` get the uniform share), the
        published fill order: floors → fallback → knapsack → remainder (module docstring)."""
        count = len(p_hat)
        cap = max(int(round(self.cap_factor * per_prompt)), self.min_samples)
        p = np.where(trusted, np.nan_to_num(p_hat), 0.0)
        valuable = trusted & (p > 0) & (p < 1)
        unsolved, solved = trusted & (p == 0), trusted & (p == 1)
        samples = np.zeros(count, dtype=np.int64)
        samples[~trusted] = int(per_prompt)
        samples[valuable], samples[unsolved], samples[solved] = self.min_samples, self.unsolved_samples, self.solved_samples
        if samples.sum() > budget:  # floors above the budget (a small refill round): shared in their proportion
            samples = round_to_budget(samples.astype(float), budget) if samples.sum() else samples
        left = budget - int(samples.sum())
        metrics = {"untrusted_prompts": float((~trusted).sum()), "valuable_prompts": float(valuable.sum()), "fallback_samples": 0.0}
        if left > 0 and not valuable.any():  # nothing to price: to the unsolved prompts, else uniform (as published)
            samples = samples + _evenly(left, unsolved) if unsolved.any() else round_to_budget(np.ones(count), budget)
            metrics["fallback_samples"] = float(left)
            return samples, metrics
        if self.fallback and left > 0:
            # what the valuable prompts need for a useful group with probability `confidence`, each at most its cap
            worst = np.where(valuable, np.maximum(p, 1.0 - p) if useful == "mixed" else 1.0 - p, 0.5)
            need = np.where(valuable, np.floor(np.minimum(cap, math.log(1.0 - self.confidence) / np.log(worst))), 0.0)
            receivers = unsolved if unsolved.any() else ~valuable
            if need.sum() < left and receivers.any():
                excess = left - int(need.sum())
                samples += _evenly(excess, receivers)
                left -= excess
                metrics["fallback_samples"] = float(excess)
        if left > 0:
            value = lambda n: np.where(valuable, knapsack_rl_value(n, p, useful), 0.0)  # noqa: E731
            upper = np.where(valuable, np.maximum(cap, samples), samples)
            filled = greedy_knapsack(value, count, int(samples.sum()) + left, samples, upper)
            left -= int((filled - samples).sum())
            samples = filled
            if left > 0:  # every valuable prompt at its cap: the rest evenly over them (as published)
                samples += _evenly(left, valuable)
        metrics["expected_value"] = float(knapsack_rl_value(samples, p, useful)[valuable].sum())
        return samples, metrics


def _evenly(total: int, receivers: np.ndarray) -> np.ndarray:
    """``total`` spread evenly over the ``receivers`` (the first ones get the remainder), as the published
    code spreads the fallback."""
    out = np.zeros(len(receivers), dtype=np.int64)
    index = np.flatnonzero(receivers)
    if total <= 0 or not index.size:
        return out
    out[index] = total // index.size
    out[index[: total % index.size]] += 1
    return out
