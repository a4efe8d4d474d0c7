"""Budget allocators: how many samples each prompt gets (uniform, GVM, GVM++, and the peers: Knapsack RL,
GRESO, Pilot-Commit, a zero-variance filter), and the per-prompt statistics they read."""

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator, PilotRequest
from gvmlit.allocation.gvm import GVMAllocator
from gvmlit.allocation.gvmpp import GVMPlusPlusAllocator
from gvmlit.allocation.knapsack import KnapsackAllocator, knapsack_rl_value
from gvmlit.allocation.pilot_commit import PilotCommitAllocator
from gvmlit.allocation.rules import (
    bounded_allocation,
    capped_allocation,
    greedy_knapsack,
    gvm_allocation,
    gvm_weights,
    knapsack_value,
    round_to_budget,
    without_singletons,
)
from gvmlit.allocation.selective import SelectiveRolloutAllocator
from gvmlit.allocation.store import GradNormObservation, PromptHistory, PromptStatsStore, Visit
from gvmlit.allocation.uniform import UniformAllocator
from gvmlit.allocation.zero_variance import ZeroVarianceFilterAllocator

__all__ = [
    "Allocation",
    "AllocationRequest",
    "BudgetAllocator",
    "PilotRequest",
    "GVMAllocator",
    "GVMPlusPlusAllocator",
    "GradNormObservation",
    "KnapsackAllocator",
    "PilotCommitAllocator",
    "PromptHistory",
    "PromptStatsStore",
    "SelectiveRolloutAllocator",
    "UniformAllocator",
    "Visit",
    "ZeroVarianceFilterAllocator",
    "bounded_allocation",
    "capped_allocation",
    "greedy_knapsack",
    "gvm_allocation",
    "gvm_weights",
    "knapsack_rl_value",
    "knapsack_value",
    "round_to_budget",
    "without_singletons",
]
