"""UniformAllocator: vanilla RAFT / GRPO — every prompt gets the same number of samples."""

from __future__ import annotations

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator
from gvmlit.allocation.rules import round_to_budget


class UniformAllocator(BudgetAllocator):
    """n_i = N / n for every prompt (the remainder, if any, to the first prompts). Spends no pilot samples."""

    def allocate(self, request: AllocationRequest) -> Allocation:
        if not request.prompts:
            return Allocation(np.zeros(0, dtype=np.int64))
        return Allocation(round_to_budget(np.ones(len(request.prompts)), self.main_budget(request)))
