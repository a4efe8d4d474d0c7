"""Allocation rules against closed forms."""

import numpy as np
import pytest

from gvmlit.allocation import PromptStats, UniformAllocator, round_to_budget


def test_round_to_budget_is_exact_and_proportional():
    weights = np.array([3.0, 1.0, 0.0, 2.0])
    assert round_to_budget(weights, 12).tolist() == [6, 2, 0, 4]
    # largest remainder: ideal (5.0, 1.67, 0, 3.33) → floors (5, 1, 0, 3), one unit to index 1 (.67)
    assert round_to_budget(weights, 10).tolist() == [5, 2, 0, 3]


@pytest.mark.parametrize("budget", [0, 1, 7, 64, 1000, 12345])
def test_round_to_budget_sums_exactly_for_any_budget(budget):
    rng = np.random.default_rng(budget)
    for _ in range(20):
        weights = rng.random(rng.integers(1, 40)) * (rng.random() < 0.5 or 1e-9 + 1)
        weights[rng.random(len(weights)) < 0.2] = 0.0
        if weights.sum() == 0:
            weights[0] = 1.0
        counts = round_to_budget(weights, budget)
        assert counts.sum() == budget
        assert (counts >= 0).all() and (counts[weights == 0] == 0).all()
        # every count is within one of its ideal share
        ideal = budget * weights / weights.sum()
        assert np.all(np.abs(counts - ideal) < 1.0)


def test_round_to_budget_rejects_bad_weights():
    with pytest.raises(ValueError, match="all weights are zero"):
        round_to_budget(np.zeros(3), 5)
    with pytest.raises(ValueError):
        round_to_budget(np.array([1.0, np.nan]), 5)


def test_uniform_allocator():
    stats = PromptStats(uids=[f"p{i}" for i in range(5)])
    assert UniformAllocator().allocate(stats, 40).tolist() == [8] * 5
    assert UniformAllocator().allocate(stats, 12).tolist() == [3, 3, 2, 2, 2]
    assert UniformAllocator().allocate(PromptStats(uids=[]), 0).tolist() == []
