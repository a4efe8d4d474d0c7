"""Allocation rules against closed forms."""

import numpy as np
import pytest

from gvmlit.allocation import AllocationRequest, PromptStatsStore, UniformAllocator, Visit, round_to_budget
from gvmlit.records import Completion, PromptRecord


def _request(count, budget, pilots=None, accepted=None, store=None, epoch=0):
    prompts = [PromptRecord(f"p{i}", "", "0") for i in range(count)]
    pilots = pilots or [[] for _ in prompts]
    accepted = accepted or [[] for _ in prompts]
    return AllocationRequest(prompts, pilots, accepted, budget, epoch, store or PromptStatsStore())


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
    assert UniformAllocator().allocate(_request(5, 40)).samples.tolist() == [8] * 5
    assert UniformAllocator().allocate(_request(5, 12)).samples.tolist() == [3, 3, 2, 2, 2]
    assert UniformAllocator().allocate(_request(0, 0)).samples.tolist() == []


# ---------------------------------------------------------------- GVM (docs/method.md §2–3)
from gvmlit.allocation import (  # noqa: E402
    GVMAllocator,
    GVMPlusPlusAllocator,
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


def _pilots(accepted):
    return [[Completion([5], "x", [-1.0], "stop", float(a), "correct" if a else "wrong") for a in group] for group in accepted]


def test_gvm_allocator_without_any_accepted_pilot_spreads_uniformly_and_says_so():
    accepted = [[False] * 4] * 3
    allocation = GVMAllocator(pilot_samples=4).allocate(_request(3, 9, _pilots(accepted), accepted))
    assert allocation.samples.tolist() == [3, 3, 3]  # discarded pilots: the whole N is the main draw
    assert allocation.metrics["fallback_uniform"] == 1.0 and allocation.metrics["estimated_p_zero"] == 1.0


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


def test_mixed_probability_under_a_beta_posterior():
    from gvmlit.allocation.gvmpp import beta_moment, useful_probability

    def mixed_probability(*args):
        return useful_probability(*args, "mixed")

    # Beta(1, 1): E[p^m] = 1 / (m + 1)
    assert beta_moment(1.0, 1.0, np.array([0, 1, 3])).tolist() == pytest.approx([1.0, 0.5, 0.25])
    # no pilots, group of 4 under Beta(1, 1): 1 − 2/5
    assert mixed_probability(1.0, 1.0, 0, 0, 4) == pytest.approx(0.6)
    # pilots already mixed: certain; all-correct pilots (3 of 3) and 5 more: they must hold a failure
    assert mixed_probability(4.0, 1.0, 2, 3, 8) == 1.0
    assert mixed_probability(4.0, 1.0, 3, 3, 8) == pytest.approx(1.0 - beta_moment(4.0, 1.0, np.array(5)))
    # RAFT needs one success: all-correct pilots already have it; all-wrong ones need it from the rest
    assert useful_probability(1.0, 4.0, 3, 3, 8, "accepted") == 1.0
    assert useful_probability(1.0, 4.0, 0, 3, 8, "accepted") == pytest.approx(1.0 - beta_moment(4.0, 1.0, np.array(5)))
    assert useful_probability(1.0, 1.0, 0, 0, 4, "accepted") == pytest.approx(0.8)  # 1 − E[(1−p)^4] = 1 − 1/5


def test_gvmpp_screens_pilots_sequentially_and_commits_useful_groups():
    from gvmlit.allocation import PilotRequest

    store = PromptStatsStore()
    # p0 solved in all 24 tries, p1 never in 24, p2 half the time; p3 is new
    for i, (samples, accepted) in enumerate([(24, 24), (24, 0), (24, 12)]):
        store.record_visit(f"p{i}", Visit(0, "train", samples, accepted, 10 * samples, float(accepted == samples), float(accepted > 0)))
    allocator = GVMPlusPlusAllocator(decay=1.0, skip_below=0.3)
    assert allocator.candidates(4) == 4
    prompts = [PromptRecord(f"p{i}", "", "0") for i in range(4)]
    # stage 0: memory screens out the solved and the hopeless prompt (P(a mixed group of 8) ≈ 0.24 < 0.3
    # under Beta(25, 1)); the others draw 2 pilots
    assert allocator.plan_pilots(PilotRequest(prompts, store, 1, 0, budget=32)) == [0, 0, 2, 2]
    # stage 1: p2's pilots were mixed (useful: it stops); p3's were both wrong, and under its posterior
    # two more might break that: it draws them (sequential stopping, up to 4 pilots)
    accepted = [[], [], [True, False], [False, False]]
    store.record_visit("p2", Visit(1, "pilot", 2, 1, 20, 0.0, 1.0))
    store.record_visit("p3", Visit(1, "pilot", 2, 0, 20, 0.0, 0.0))
    assert allocator.plan_pilots(PilotRequest(prompts, store, 1, 1, _pilots(accepted), accepted, budget=32)) == [0, 0, 0, 2]
    # commit: p2 is completed to 8 samples; p3 (4 wrong pilots) is not; what is left asks for a refill
    accepted = [[], [], [True, False], [False, False, False, False]]
    store.record_visit("p3", Visit(1, "pilot", 2, 0, 20, 0.0, 0.0))
    allocation = allocator.allocate(_request(4, 32, _pilots(accepted), accepted, store, epoch=1))
    assert allocation.samples.tolist() == [0, 0, 6, 0]
    # 32 − 6 pilots − 6 committed = 20 left; 4 prompts cost 12: refill 20 · 4 / 12 → 7 prompts
    assert allocation.refill == 7 and allocation.metrics["committed_prompts"] == 1
    stop = GVMPlusPlusAllocator(decay=1.0, refill=False)
    stop.candidates(4)
    assert stop.allocate(_request(4, 32, _pilots(accepted), accepted, store, epoch=1)).refill == 0
    # RAFT: one accepted pilot is enough; all-wrong pilots are not
    raft = GVMPlusPlusAllocator(decay=1.0)
    raft.candidates(4)
    accepted = [[], [], [True, True], [False, False, False, False]]
    request = _request(4, 32, _pilots(accepted), accepted, store, epoch=1)
    request.useful = "accepted"
    assert raft.allocate(request).samples.tolist() == [0, 0, 6, 0]
    # the evidence fades: far later the solved prompt is worth a pilot again
    assert GVMPlusPlusAllocator(decay=1.0, skip_below=0.3).plan_pilots(PilotRequest(prompts, store, 12, 0, budget=32))[:2] == [0, 0]
    assert GVMPlusPlusAllocator(decay=0.7, skip_below=0.3).plan_pilots(PilotRequest(prompts, store, 12, 0, budget=32))[:2] == [2, 2]


def test_store_estimates_and_round_trip():
    from gvmlit.allocation import GradNormObservation

    store = PromptStatsStore()
    store.record_visit("x", Visit(0, "pilot", 8, 0, 100, 0.0, 0.0))
    store.record_visit("x", Visit(2, "train", 4, 4, 50, 1.0, 1.0))
    store.record_visit("x", Visit(2, "train", 0, 0, 0, 0.0, 0.0))  # nothing drawn: nothing recorded
    store.record_grad_norms("x", GradNormObservation(0, "pilot", 2.0, 3))
    store.record_grad_norms("x", GradNormObservation(2, "train", 4.0, 2))
    a, b = store.beta_posterior("x", epoch=2, prior_accepted=0.5, prior_rejected=0.5, decay=0.5)
    # epoch-0 evidence weighs 0.5² = 0.25: a = 0.5 + 4, b = 0.5 + 0.25·8
    assert (a, b) == pytest.approx((4.5, 2.5))
    assert store.grad_norm_average("x", momentum=0.5) == pytest.approx(3.0)
    assert store.last_acceptance_rate("x") == 1.0 and store.mean_response_tokens("x") == pytest.approx(150 / 12)
    assert store.zero_variance_streak("x") == 2  # all rewards equal in both visited epochs
    assert "x" in store and "y" not in store and store.history("y").samples == 0 and len(store) == 1
    restored = PromptStatsStore()
    restored.load_state_dict(store.state_dict())
    assert restored.beta_posterior("x", 2, 0.5, 0.5, 0.5) == (a, b)
    assert restored.history("x").samples == 12 and restored.history("x").tokens == 150
    assert restored.grad_norm_average("x", 0.5) == pytest.approx(3.0)


def test_zero_variance_streak_counts_recent_epochs_only():
    store = PromptStatsStore()
    for epoch, (lo, hi) in enumerate([(1.0, 1.0), (0.0, 1.0), (0.0, 0.0), (1.0, 1.0)]):
        store.record_visit("x", Visit(epoch, "train", 4, int(hi * 4), 10, lo, hi))
    assert store.zero_variance_streak("x") == 2  # epochs 3 and 2; epoch 1 had a mixed group
    store.record_visit("y", Visit(0, "pilot", 2, 2, 10, 1.0, 1.0))
    store.record_visit("y", Visit(0, "train", 2, 0, 10, 0.0, 0.0))
    assert store.zero_variance_streak("y") == 0  # all-correct pilots, all-wrong main draw: mixed in the epoch


# ---------------------------------------------------------------- the peers' allocators (docs/method.md §7)
from gvmlit.allocation import greedy_knapsack, knapsack_value, without_singletons  # noqa: E402


def test_knapsack_value_closed_form():
    p = np.array([0.0, 0.25, 0.5, 1.0])
    assert knapsack_value(1, p).tolist() == [0.0, 0.0, 0.0, 0.0]  # a group of one never carries a gradient
    expected = (1 - 0.25**4 - 0.75**4) * 0.25 * 0.75**2
    assert knapsack_value(4, p)[1] == pytest.approx(expected)
    assert knapsack_value(8, p)[[0, 3]].tolist() == [0.0, 0.0]


def test_greedy_knapsack_is_optimal_on_a_small_instance():
    import itertools

    p = np.array([0.1, 0.3, 0.6, 0.9, 0.5])
    value = lambda n: knapsack_value(n, p)  # noqa: E731
    counts = greedy_knapsack(value, 5, 14, 0, 6)
    best = max(
        (c for c in itertools.product(range(7), repeat=5) if sum(c) <= 14), key=lambda c: knapsack_value(np.array(c), p).sum()
    )
    assert knapsack_value(counts, p).sum() == pytest.approx(knapsack_value(np.array(best), p).sum())
    assert counts.sum() == 14 and 1 not in counts.tolist()


def test_without_singletons_keeps_the_total():
    counts = without_singletons(np.array([1, 5, 1, 1, 0, 2]), weights=np.array([0.9, 1.0, 0.1, 0.5, 0.0, 0.2]))
    assert counts.sum() == 10 and 1 not in counts.tolist()
    assert counts[0] == 2 and counts[3] == 0  # the heavier of a pair takes both samples
    assert counts[1] == 6  # the odd one out goes to the heaviest prompt with two or more
