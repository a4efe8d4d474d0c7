"""Evaluation metrics as pure functions: mean@k, unbiased pass@k, acceptance statistics."""

from __future__ import annotations

from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 − C(n−c, k) / C(n, k) for c correct out of n samples."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 ≤ c ≤ n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 ≤ k ≤ n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean_at_k(correct: np.ndarray) -> float:
    """mean@k: the average correctness over all k samples of all problems ([problems, k] 0/1 array)."""
    correct = np.asarray(correct, dtype=np.float64)
    return float(correct.mean()) if correct.size else 0.0


def acceptance_rates(accepted: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-prompt acceptance rate accepted_i / n_i; NaN where n_i = 0."""
    accepted = np.asarray(accepted, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, accepted / np.maximum(counts, 1), np.nan)
