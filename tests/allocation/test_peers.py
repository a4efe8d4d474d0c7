"""The peers' allocators against worked examples traced through their published code (docs/peers.md)."""

import math

import numpy as np
import pytest

from gvmlit.allocation import (
    AllocationRequest,
    KnapsackAllocator,
    PilotCommitAllocator,
    PilotRequest,
    PromptStatsStore,
    SelectiveRolloutAllocator,
    Visit,
    ZeroVarianceFilterAllocator,
    knapsack_rl_value,
)
from gvmlit.allocation.knapsack import pooled_success_rate
from gvmlit.allocation.selective import skip_probability, visit_streak
from gvmlit.records import Completion, PromptRecord


def _prompts(count):
    return [PromptRecord(f"p{i}", "", "0") for i in range(count)]


def _request(count, budget, store=None, epoch=1, pilots=None, accepted=None, useful="mixed", round=0, epoch_budget=None, target=None):
    prompts = _prompts(count)
    pilots = pilots or [[] for _ in prompts]
    accepted = accepted or [[] for _ in prompts]
    return AllocationRequest(prompts, pilots, accepted, budget, epoch, store or PromptStatsStore(), useful, round, epoch_budget or budget, target or count)


def _visit(store, uid, epoch, samples, accepted):
    store.record_visit(uid, Visit(epoch, "train", samples, accepted, 10 * samples, float(accepted == samples), float(accepted > 0)))


def _pilots(accepted):
    return [[Completion([5], "x", [-1.0], "stop", float(a), "correct" if a else "wrong") for a in group] for group in accepted]


# ---------------------------------------------------------------- Knapsack RL (exploration_utils.py, rl_dataset.py)
def test_knapsack_worked_example_in_the_published_fill_order():
    """Six prompts, 8 samples per prompt, N = 48, traced through sampling_budget_by_knapsack:

    floors: p0 untrusted (4 samples ever) → n = 8; p1 (p̂ = 0) → 2; p2 (p̂ = 1) → 2; p3, p4, p5 valuable → 2
    each; 18 in all, 30 left. Needs at α = 0.9: ⌊log 0.1 / log max(p, 1 − p)⌋ = 3, 8, 17 → 28 < 30: the
    fallback gives the 2 left over to the unsolved p1. The knapsack shares 28 among p3, p4, p5 (p̂ = 0.5,
    0.25, 0.875) maximising Σ V(2 + k_i, p̂_i): k = (7, 13, 8), the unique optimum (checked by enumeration)."""
    store = PromptStatsStore()
    _visit(store, "p0", 0, 4, 2)
    for uid, accepted in [("p1", 0), ("p2", 8), ("p3", 4), ("p4", 2), ("p5", 7)]:
        _visit(store, uid, 0, 8, accepted)
    allocation = KnapsackAllocator().allocate(_request(6, 48, store))
    assert allocation.samples.tolist() == [8, 4, 2, 9, 15, 10]
    assert allocation.metrics["fallback_samples"] == 2
    best = max(
        ((a, b, 28 - a - b) for a in range(29) for b in range(29 - a)),
        key=lambda k: sum(knapsack_rl_value(2 + ki, p) for ki, p in zip(k, (0.5, 0.25, 0.875))),
    )
    assert best == (7, 13, 8)
    assert math.floor(math.log(0.1) / math.log(0.875)) == 17


def test_knapsack_pools_recent_rewards_and_trusts_them_after_eight():
    store = PromptStatsStore()
    _visit(store, "a", 0, 8, 2)
    _visit(store, "a", 1, 8, 6)  # last visit below the window of 16: pooled with the one before → 8 / 16
    _visit(store, "b", 0, 24, 12)
    _visit(store, "b", 3, 8, 8)  # 8 of 8, plus 8 of the older 24 pro rata (4 correct) → 12 / 16
    _visit(store, "c", 0, 16, 4)  # a visit of 16 stands alone
    _visit(store, "d", 0, 4, 4)  # 4 samples ever: not trusted yet
    assert pooled_success_rate(store, "a", 16) == (0.5, 16)
    assert pooled_success_rate(store, "b", 16) == (0.75, 32)
    assert pooled_success_rate(store, "c", 16) == (0.25, 16)
    assert pooled_success_rate(store, "e", 16) == (None, 0)
    allocation = KnapsackAllocator().allocate(_request(1, 8, store))  # p0 never seen: untrusted, uniform share
    assert allocation.samples.tolist() == [8] and np.isnan(allocation.acceptance_rate[0])


def test_knapsack_cap_scales_with_the_budget_and_raft_values_accepted_groups():
    # one valuable prompt and a solved one; 4 per prompt → cap 64: the valuable one takes all it can use
    allocator = KnapsackAllocator(fallback=False)
    samples, _ = allocator.knapsack(np.array([0.5, 1.0]), np.array([True, True]), 200, 4.0)
    assert samples.tolist() == [198, 2]  # capped at 64 by the knapsack, the remainder spread over it (as published)
    samples, _ = allocator.knapsack(np.array([0.5, 1.0, 0.5]), np.array([True, True, True]), 200, 4.0)
    assert samples.tolist() == [99, 2, 99]
    # RAFT: a group is useful with one accepted sample, so V(n, p) = [1 − (1 − p)^n] p (1 − p)^2
    assert knapsack_rl_value(4, 0.25, "accepted") == pytest.approx((1 - 0.75**4) * 0.25 * 0.75**2)
    assert knapsack_rl_value(1, 0.25, "accepted") > 0 == knapsack_rl_value(1, 0.25, "mixed")


# ---------------------------------------------------------------- GRESO (presampling_selector.py, ray_trainer.py)
def test_greso_skip_probability_as_published():
    assert skip_probability(3, 0, 0.5, 0.5) == pytest.approx(1 - 0.5**3)  # three all-correct visits
    assert skip_probability(0, 1, 0.5, 0.5) == pytest.approx(0.5)  # one all-wrong visit
    assert skip_probability(7, 0, 0.5, 0.5) == pytest.approx(0.99)  # 1 − max(0.5^7, 0.01): never certain
    assert skip_probability(0, 0, 0.5, 0.5) == 0.0
    store = PromptStatsStore()
    for epoch, accepted in enumerate([8, 0, 0, 8, 8]):
        _visit(store, "x", epoch, 8, accepted)
    assert visit_streak(store, "x", "easy") == 2 and visit_streak(store, "x", "hard") == 0  # hard counts only when last was hard
    _visit(store, "y", 0, 8, 1)  # 1 of 8 = 0.125 > 0.11: not hard
    assert visit_streak(store, "y", "hard") == 0


def test_greso_adapts_towards_its_split_target_and_refills_skipped_slots():
    store = PromptStatsStore()
    accepted = [8] * 1 + [0] * 1 + [4] * 8  # epoch 0: 10 % all correct, 10 % all wrong
    for i, a in enumerate(accepted):
        _visit(store, f"p{i}", 0, 8, a)
    allocator = SelectiveRolloutAllocator(seed=0)
    allocator.allocate(_request(10, 80, store, epoch=1))  # epoch 1 revisits: the adaptation starts
    allocator._sampled[1] = [f"p{i}" for i in range(10)]
    for i, a in enumerate(accepted):
        _visit(store, f"p{i}", 1, 8, a)
    n = allocator.allocate(_request(10, 80, store, epoch=2))
    # targets: easy 0.25 / 3 ≈ 0.083 (reached by 0.1: skip more), hard 0.25 · 2/3 ≈ 0.167 (missed: skip less)
    assert allocator.exploration == pytest.approx({"easy": 0.49, "hard": 0.51})
    skipped = n.samples == 0
    assert n.refill == skipped.sum() and set(n.samples[~skipped].tolist()) == {8}
    assert not skipped[2:].any()  # mixed prompts are never skipped


def test_greso_decisions_follow_the_run_seed():
    store = PromptStatsStore()
    for i in range(40):
        _visit(store, f"p{i}", 0, 8, 8)
    decisions = []
    for seed in (1, 1, 2):
        allocator = SelectiveRolloutAllocator()
        allocator.use_run_seed(seed)
        decisions.append(allocator.allocate(_request(40, 320, store)).samples.tolist())
    assert decisions[0] == decisions[1] != decisions[2]


# ---------------------------------------------------------------- Pilot-Commit (recipe/pc/pc_ray_trainer.py, utils.py)
def test_pilot_commit_worked_example():
    """16 samples per prompt: pilots of 4 (a quarter, as 32 of 128), commits of 12. Pilot accuracies
    1.0 (too easy: skipped; with 28 earlier correct samples that makes 32 in a row: evicted), 0.75, 0.5,
    0.25 (pass: 0.125 ≤ a ≤ 0.75), 0.0 (too hard: deferred).
    The round's main budget pays for two commits: the largest pilot variance first (a = 0.5, then the
    first of the tied 0.75 and 0.25)."""
    allocator = PilotCommitAllocator()
    assert allocator.candidates(64) == 128  # 64 / (1/4 + 3/4 / 3): the published 3 : 1 screening within N
    allocator.candidates(5)
    accepted = [[True] * 4, [True, True, True, False], [True, True, False, False], [True, False, False, False], [False] * 4]
    plan = allocator.plan_pilots(PilotRequest(_prompts(5), PromptStatsStore(), 0, 0, budget=80))
    assert plan == [4] * 5
    store = PromptStatsStore()
    _visit(store, "p0", 0, 28, 28)
    store.record_visit("p0", Visit(1, "pilot", 4, 4, 40, 1.0, 1.0))
    _visit(store, "p1", 0, 28, 28)  # 31 of its last 32 correct: not evicted
    store.record_visit("p1", Visit(1, "pilot", 4, 3, 40, 0.0, 1.0))
    request = _request(5, 44, store=store, pilots=_pilots(accepted), accepted=accepted, epoch=1, epoch_budget=80, target=5)  # 20 of the 44 are pilots
    allocation = allocator.allocate(request)
    assert allocation.samples.tolist() == [0, 12, 12, 0, 0]
    assert allocation.metrics["pilot_pass_rate"] == 0.6
    # p0's last 32 samples were all correct: it is never piloted again
    assert allocator.plan_pilots(PilotRequest(_prompts(2), PromptStatsStore(), 1, 0, budget=80)) == [0, 4]


def test_pilot_commit_refills_what_its_commits_leave():
    allocator = PilotCommitAllocator()
    allocator.candidates(4)  # 8 candidates, 8 per prompt: pilots of 2, commits of 6
    accepted = [[True, False]] + [[False, False]] * 7  # one mixed pilot
    request = _request(8, 32, pilots=_pilots(accepted), accepted=accepted, epoch=0, epoch_budget=32, target=4)
    allocator.plan_pilots(PilotRequest(_prompts(8), PromptStatsStore(), 0, 0, budget=32))
    allocation = allocator.allocate(request)
    assert allocation.samples.tolist() == [6] + [0] * 7
    # 32 − 16 pilots − 6 committed = 10 left: screen 10 / (8 · (1/4 + 1/4)) → 3 more candidates
    assert allocation.refill == 3


# ---------------------------------------------------------------- the zero-variance filter
def test_zero_variance_filter_skips_what_taught_nothing_last_time_and_refills():
    store = PromptStatsStore()
    _visit(store, "p0", 0, 8, 8)  # all correct: no GRPO gradient, but RAFT learns from it
    _visit(store, "p1", 0, 8, 0)  # all wrong: nothing for either
    _visit(store, "p2", 0, 8, 3)
    _visit(store, "p2", 1, 8, 0)  # the last visit counts
    allocator = ZeroVarianceFilterAllocator()
    grpo = allocator.allocate(_request(4, 32, store, epoch=2))
    assert grpo.samples.tolist() == [0, 0, 0, 8] and grpo.refill == 3
    # the skip lasts one visit: skipped for their last group, they are sampled the next time they come
    assert allocator.allocate(_request(4, 32, store, epoch=3)).samples.tolist() == [8, 8, 8, 8]
    raft = ZeroVarianceFilterAllocator().allocate(_request(4, 32, store, epoch=2, useful="accepted"))
    assert raft.samples.tolist() == [8, 0, 0, 8] and raft.refill == 2


# ---------------------------------------------------------------- inside the real loop
def test_screening_allocators_stay_within_the_budget_in_the_real_loop(tmp_path):
    """Pilot-Commit screens 2 × the epoch's prompts, commits, and refills what is left; GVM++ pilots,
    stops and refills: every sample counted, never more than N."""
    import torch
    from lightning.pytorch import Trainer

    from gvmlit.algorithms import GRPO, Optimization, RolloutSettings
    from gvmlit.allocation import GVMPlusPlusAllocator
    from gvmlit.data import ArithmeticTask, RolloutDataModule
    from gvmlit.policy import PretrainedPolicy
    from gvmlit.sampling import HFSampler
    from gvmlit.verifiers import ArithmeticVerifier
    from helpers import ROOT

    for allocator in (PilotCommitAllocator(), GVMPlusPlusAllocator()):
        torch.manual_seed(0)
        learner = GRPO(
            policy=PretrainedPolicy(str(ROOT / "models" / "arith-sft")), allocator=allocator, optim=Optimization(lr=1e-5),
            rollout=RolloutSettings(samples_per_prompt=8), sampler=HFSampler(max_new_tokens=40, progress=False),
            verifier=ArithmeticVerifier(progress=False),
        )  # fmt: skip
        data = RolloutDataModule(source=ArithmeticTask(num_train=60, num_val=0, seed=5), prompts_per_epoch=6, batch_size=16, prompt_template="{problem}=")
        Trainer(max_epochs=1, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, logger=False,
                enable_checkpointing=False, default_root_dir=tmp_path).fit(learner, datamodule=data)  # fmt: skip
        result = learner.epoch_result
        assert learner.budget.training_samples == result.metrics["budget/epoch_samples"] <= 48
        assert sum(len(g) for g in result.groups) == learner.budget.training_samples  # pilots kept, all counted
        assert learner.budget.samples("pilot") > 0
        if isinstance(allocator, PilotCommitAllocator):
            assert len(result.prompts) >= 12  # 2 × 6 candidates screened, refills on top
            committed = [g for g in result.groups if len(g) == 8]
            assert all(0 < sum(c.accepted for c in g[:2]) < 2 for g in committed)  # only mixed pilots were committed
