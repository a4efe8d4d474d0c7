"""Allocation rules as pure functions of per-prompt statistics (docs/method.md §2–3)."""

from __future__ import annotations

import numpy as np


def round_to_budget(weights: np.ndarray, budget: int) -> np.ndarray:
    """Integers n_i ∝ weights with Σ n_i = budget exactly (largest-remainder rounding).

    n_i starts at ⌊budget · w_i / Σw⌋; the leftover units go to the largest fractional parts (ties to
    the lower index). Zero weights get zero. All-zero weights raise: the caller decides what to do.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if budget < 0:
        raise ValueError("budget must be ≥ 0")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("weights must be finite and ≥ 0")
    total = weights.sum()
    if total <= 0:
        raise ValueError("all weights are zero: nothing to allocate to")
    ideal = budget * weights / total
    counts = np.floor(ideal).astype(np.int64)
    leftover = budget - int(counts.sum())
    if leftover:
        order = np.lexsort((np.arange(len(weights)), -(ideal - counts)))
        counts[order[:leftover]] += 1
    return counts


def gvm_weights(acceptance_rate: np.ndarray, grad_norm: np.ndarray, alpha: float = 1e-3, beta: float = 2.0) -> np.ndarray:
    """GVM's allocation weights (docs/method.md eq. 6; the paper's eq. 7, Proposition 1):

        w_i = G_i / √(p_i + α / p_i^(β−1))

    α = 0 gives the basic rule w_i = G_i / √p_i. Prompts with p_i = 0 or G_i = 0 get w_i = 0.
    """
    p = np.asarray(acceptance_rate, dtype=np.float64)
    g = np.asarray(grad_norm, dtype=np.float64)
    if p.shape != g.shape:
        raise ValueError(f"acceptance_rate {p.shape} and grad_norm {g.shape} differ in shape")
    if np.any((p < 0) | (p > 1)) or np.any(g < 0):
        raise ValueError("need 0 ≤ p_i ≤ 1 and G_i ≥ 0")
    active = (p > 0) & (g > 0)
    weights = np.zeros_like(p)
    pa = p[active]
    weights[active] = g[active] / np.sqrt(pa + alpha / pa ** (beta - 1.0))
    return weights


def gvm_allocation(
    acceptance_rate: np.ndarray,
    grad_norm: np.ndarray,
    budget: int,
    alpha: float = 1e-3,
    beta: float = 2.0,
    max_acceptance: float | None = None,
    min_expected_accepted: float | None = None,
) -> np.ndarray:
    """GVM stage 2 (docs/method.md §3, eq. 6): n_i = N·w_i/Σw rounded so that Σ n_i = N exactly.

    Optional filters (off by default, as in the reference code): ``max_acceptance`` drops prompts with
    p_i above it (too easy); ``min_expected_accepted`` drops prompts whose expected accepted count
    p_i·n_i falls below it, then re-allocates the budget among the rest until no prompt is dropped.
    Raises ValueError when no prompt has a positive weight.
    """
    p = np.asarray(acceptance_rate, dtype=np.float64)
    weights = gvm_weights(p, grad_norm, alpha, beta)
    if max_acceptance is not None:
        weights[p > max_acceptance] = 0.0
    while True:
        counts = round_to_budget(weights, budget)
        if min_expected_accepted is None:
            return counts
        starved = (counts > 0) & (p * counts < min_expected_accepted)
        if not starved.any() or starved.sum() == (weights > 0).sum():
            return counts
        weights[starved] = 0.0


def bounded_allocation(weights: np.ndarray, budget: int, lower: np.ndarray | int, upper: np.ndarray | int) -> np.ndarray:
    """Integers lower_i ≤ n_i ≤ upper_i with Σ n_i = budget, otherwise proportional to ``weights``.

    Water filling: every prompt starts at its lower bound; the rest of the budget is shared in
    proportion to the weights, prompts that would pass their upper bound are capped and the excess
    is shared again among the others. If the prompts with room left all have zero weight, the
    remainder is spread evenly over them (the budget is always spent exactly). Rounding is by largest
    remainder among prompts below their upper bound.
    """
    weights = np.asarray(weights, dtype=np.float64)
    size = len(weights)
    lower = np.broadcast_to(np.asarray(lower, dtype=np.int64), (size,)).copy()
    upper = np.broadcast_to(np.asarray(upper, dtype=np.int64), (size,)).copy()
    if np.any(lower > upper) or np.any(lower < 0):
        raise ValueError("need 0 ≤ lower_i ≤ upper_i")
    if not lower.sum() <= budget <= upper.sum():
        raise ValueError(f"budget {budget} is outside [Σ lower, Σ upper] = [{lower.sum()}, {upper.sum()}]")
    ideal = lower.astype(np.float64)
    remaining = float(budget - lower.sum())
    free = upper > lower
    while remaining > 1e-9 and free.any():
        share_weights = np.where(free, weights, 0.0)
        if share_weights.sum() <= 0:
            share_weights = free.astype(np.float64)
        share = remaining * share_weights / share_weights.sum()
        room = upper - ideal
        over = free & (share > room)
        if over.any():
            remaining -= room[over].sum()
            ideal[over] = upper[over]
            free &= ~over
            continue
        ideal += share
        remaining = 0.0
    counts = np.minimum(np.floor(ideal + 1e-9).astype(np.int64), upper)
    leftover = budget - int(counts.sum())
    if leftover > 0:
        fraction = np.where(counts < upper, ideal - counts, -np.inf)
        order = np.lexsort((np.arange(size), -fraction))
        counts[order[:leftover]] += 1
    return counts


def capped_allocation(weights: np.ndarray, budget: int, upper: np.ndarray | int, lower: np.ndarray | int = 0) -> np.ndarray:
    """Integers lower_i ≤ n_i ≤ upper_i, otherwise proportional to ``weights``, spending the budget only as
    far as the caps allow: Σ n_i = min(budget, Σ upper_i) (an allocation may spend less than its budget,
    never more). Prompts with zero weight get their lower bound. Raises when Σ lower_i > budget.

    The helper for an allocator whose caps may not absorb the budget (:func:`bounded_allocation` insists
    on spending it exactly, and refuses a budget above Σ upper_i).
    """
    weights = np.asarray(weights, dtype=np.float64)
    size = len(weights)
    lower = np.broadcast_to(np.asarray(lower, dtype=np.int64), (size,)).copy()
    upper = np.broadcast_to(np.asarray(upper, dtype=np.int64), (size,)).copy()
    upper = np.where(weights > 0, upper, lower)  # a prompt of no weight stays at its lower bound
    if np.any(lower > upper) or np.any(lower < 0):
        raise ValueError("need 0 ≤ lower_i ≤ upper_i")
    if lower.sum() > budget:
        raise ValueError(f"budget {budget} is below Σ lower = {lower.sum()}")
    return bounded_allocation(weights, min(budget, int(upper.sum())), lower, upper)


def knapsack_value(samples: np.ndarray | int, acceptance_rate: np.ndarray | float) -> np.ndarray:
    """Knapsack RL's value of giving a prompt n samples at success rate p (docs/method.md eq. 12):

        V(n, p) = [1 − p^n − (1 − p)^n] · p (1 − p)²

    the probability that a GRPO group of n is neither all correct nor all wrong, times an information
    gain. V(0, p) = V(1, p) = 0; V(·, 0) = V(·, 1) = 0.
    """
    n = np.asarray(samples, dtype=np.float64)
    p = np.asarray(acceptance_rate, dtype=np.float64)
    return (1.0 - p**n - (1.0 - p) ** n) * p * (1.0 - p) ** 2


def greedy_knapsack(value, count: int, budget: int, lower: np.ndarray | int, upper: np.ndarray | int) -> np.ndarray:
    """Integers lower_i ≤ n_i ≤ upper_i with Σ n_i ≤ budget maximising Σ_i value_i(n_i), by repeatedly
    giving samples to the item whose value grows most: two at a time from 0 (a group of one is worth
    nothing in GRPO), then one at a time — optimal when each value is concave from n = 2 on, as Knapsack
    RL's is. Items whose next step adds nothing get nothing; the budget is then not fully spent.
    ``value(n)`` maps an array of counts [count] to an array of values.
    """
    lower = np.broadcast_to(np.asarray(lower, dtype=np.int64), (count,)).copy()
    upper = np.broadcast_to(np.asarray(upper, dtype=np.int64), (count,)).copy()
    counts = lower.copy()
    left = budget - int(counts.sum())
    if left < 0:
        raise ValueError(f"budget {budget} is below Σ lower = {counts.sum()}")
    while left >= 1:
        size = np.minimum(np.where(counts == 0, 2, 1), np.minimum(left, upper - counts))
        gains = np.where(size > 0, value(counts + size) - value(counts), -np.inf)
        best = int(np.argmax(gains))  # ties → the lowest index
        if not gains[best] > 0:
            break
        counts[best] += size[best]
        left -= int(size[best])
    return counts


def without_singletons(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The same total with no prompt at exactly one sample (a GRPO group of one has no baseline and
    is dropped): singletons are paired up by weight — the heavier of two gets both samples — and a
    last unpaired one gives its sample to the heaviest prompt that has two or more."""
    counts = np.asarray(counts, dtype=np.int64).copy()
    weights = np.asarray(weights, dtype=np.float64)
    singles = [int(i) for i in np.argsort(-weights, kind="stable") if counts[i] == 1]
    for heavy, light in zip(singles[0::2], singles[1::2]):
        counts[heavy], counts[light] = 2, 0
    if len(singles) % 2:
        last = singles[-1]
        receivers = np.flatnonzero(counts >= 2)
        if receivers.size:
            counts[last] = 0
            counts[receivers[np.argmax(weights[receivers])]] += 1
    return counts
