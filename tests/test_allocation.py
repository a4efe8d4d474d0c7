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


# ---------------------------------------------------------------- GVM (method.md §2–3)
from gvmlit.allocation import (  # noqa: E402
    GVMAllocator,
    GVMPlusPlusAllocator,
    PromptStatsStore,
    bounded_allocation,
    gvm_allocation,
    gvm_weights,
)


def test_gvm_worked_example():
    p = np.array([1 / 8, 1 / 2, 1, 0, 1 / 4])
    counts = gvm_allocation(p, np.ones(5), 40, alpha=1e-3, beta=2.0)
    assert counts.tolist() == [15, 8, 6, 0, 11]


def test_gvm_weights_closed_form():
    p = np.array([0.01, 0.032, 0.2, 0.9, 0.5, 0.0, 0.3])
    g = np.array([1.0, 1.0, 2.0, 0.5, 0.0, 3.0, 1.5])
    alpha, beta = 1e-3, 2.0
    expected = [gi / np.sqrt(pi + alpha / pi ** (beta - 1)) if pi > 0 and gi > 0 else 0.0 for pi, gi in zip(p, g)]
    np.testing.assert_allclose(gvm_weights(p, g, alpha, beta), expected)
    # basic rule with α = 0: G/√p
    np.testing.assert_allclose(gvm_weights(p[:4], g[:4], alpha=0.0), g[:4] / np.sqrt(p[:4]))
    # the regularised weight peaks near p = (α(β−1))^(1/β) ≈ 0.032
    grid = np.linspace(0.001, 1, 2000)
    peak = grid[np.argmax(gvm_weights(grid, np.ones_like(grid)))]
    assert abs(peak - np.sqrt(1e-3)) < 2e-3


@pytest.mark.parametrize("budget", [1, 13, 40, 999])
def test_gvm_allocation_sums_exactly(budget):
    rng = np.random.default_rng(budget)
    p = rng.integers(0, 9, size=30) / 8
    g = rng.random(30) * 3
    counts = gvm_allocation(p, g, budget)
    assert counts.sum() == budget
    assert (counts[(p == 0) | (g == 0)] == 0).all()


def test_gvm_filters():
    p = np.array([0.9, 0.5, 0.05, 0.125])
    g = np.ones(4)
    assert gvm_allocation(p, g, 20, max_acceptance=0.8)[0] == 0
    # without the floor the p=0.05 prompt gets ~9 samples: expected accepted 0.45 < 1 → dropped
    plain = gvm_allocation(p, g, 20)
    assert plain[2] > 0 and p[2] * plain[2] < 1
    floored = gvm_allocation(p, g, 20, min_expected_accepted=1.0)
    assert floored[2] == 0 and floored.sum() == 20
    assert (p * floored)[floored > 0].min() >= 1.0


def test_gvm_allocator_without_any_accepted_pilot_spreads_uniformly_and_says_so():
    stats = PromptStats(uids=["a", "b", "c"], acceptance_rate=np.zeros(3), grad_norm=np.zeros(3))
    assert GVMAllocator().allocate(stats, 9).tolist() == [3, 3, 3]
    assert stats.extra["fallback_uniform"] is True


def test_bounded_allocation_respects_bounds_and_budget():
    w = np.array([10.0, 1.0, 1.0, 0.0])
    counts = bounded_allocation(w, 20, lower=1, upper=8)
    # prompt 0 is capped at 8; the other 12 − … are shared by weight above the floor of 1
    assert counts.tolist() == [8, 6, 5, 1]
    assert counts.sum() == 20
    rng = np.random.default_rng(0)
    for _ in range(200):
        size = int(rng.integers(1, 20))
        w = rng.random(size) * (rng.random(size) > 0.3)
        lo, hi = int(rng.integers(0, 3)), int(rng.integers(3, 12))
        budget = int(rng.integers(lo * size, hi * size + 1))
        counts = bounded_allocation(w, budget, lo, hi)
        assert counts.sum() == budget and counts.min() >= lo and counts.max() <= hi
    with pytest.raises(ValueError, match="outside"):
        bounded_allocation(np.ones(3), 40, 0, 8)


def test_gvmpp_allocation_never_starves_and_respects_caps():
    # p̂ from a Beta(0.5, 0.5) posterior is never 0, so hard prompts keep samples
    stats = PromptStats(uids=list("abcd"), acceptance_rate=np.array([0.03, 0.5, 0.97, 0.2]), grad_norm=np.ones(4))
    alloc = GVMPlusPlusAllocator(min_samples=2, max_samples=12)
    counts = alloc.allocate(stats, 32)
    assert counts.sum() == 32 and counts.min() >= 2 and counts.max() <= 12
    assert counts[0] == counts.max()  # the rarely-solved prompt gets the most, up to the cap


def test_posterior_with_decay_and_store_round_trip():
    store = PromptStatsStore()
    store.record_samples("x", epoch=0, samples=8, accepted=0, tokens=100)
    store.record_samples("x", epoch=2, samples=4, accepted=4, tokens=50)
    store.record_grad_norm("x", 2.0, momentum=0.5)
    store.record_grad_norm("x", 4.0, momentum=0.5)
    a, b = store.posterior("x", epoch=2, prior_accepted=0.5, prior_rejected=0.5, decay=0.5)
    # epoch-0 evidence weighs 0.5² = 0.25: a = 0.5 + 4, b = 0.5 + 0.25·8
    assert (a, b) == pytest.approx((4.5, 2.5))
    assert store.get("x").grad_norm == pytest.approx(3.0)
    assert "x" in store and "y" not in store
    restored = PromptStatsStore()
    restored.load_state_dict(store.state_dict())
    assert restored.posterior("x", 2, 0.5, 0.5, 0.5) == (a, b)
    assert restored.get("x").samples == 12 and restored.get("x").tokens == 150
    assert restored.get("x").grad_norm == pytest.approx(3.0)
