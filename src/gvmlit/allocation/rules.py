"""Allocation rules as pure functions of per-prompt statistics (method.md §2–3)."""

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
