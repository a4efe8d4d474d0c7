"""Budget allocators: how many samples each prompt gets (uniform, GVM, GVM++)."""

from gvmlit.allocation.base import BudgetAllocator, PromptStats, RolloutEngine, ScoredCompletion
from gvmlit.allocation.rules import round_to_budget
from gvmlit.allocation.uniform import UniformAllocator

__all__ = ["BudgetAllocator", "PromptStats", "RolloutEngine", "ScoredCompletion", "UniformAllocator", "round_to_budget"]
