"""Budget allocators: how many samples each prompt gets (uniform, GVM, GVM++)."""

from gvmlit.allocation.base import BudgetAllocator, PromptStats, RolloutEngine, ScoredCompletion
from gvmlit.allocation.gvm import GVMAllocator
from gvmlit.allocation.gvmpp import GVMPlusPlusAllocator
from gvmlit.allocation.rules import bounded_allocation, gvm_allocation, gvm_weights, round_to_budget
from gvmlit.allocation.store import PromptStatsStore
from gvmlit.allocation.uniform import UniformAllocator

__all__ = [
    "BudgetAllocator",
    "GVMAllocator",
    "GVMPlusPlusAllocator",
    "PromptStats",
    "PromptStatsStore",
    "RolloutEngine",
    "ScoredCompletion",
    "UniformAllocator",
    "bounded_allocation",
    "gvm_allocation",
    "gvm_weights",
    "round_to_budget",
]
