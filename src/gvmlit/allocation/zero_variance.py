"""ZeroVarianceFilterAllocator: uniform sampling that skips a prompt whose last group carried no gradient.

The simplest rule that memory-based allocators (GVM++ among them) may reduce to, and so the baseline
they must beat: a prompt whose most recent visit gave a group that taught the learner nothing
(:func:`gvmlit.groups.carries_gradient`: all-equal rewards for GRPO, no accepted sample for RAFT) is not
sampled this epoch; every other prompt gets the uniform share N / prompts. The skipped prompts' slots
are re-spent on further prompts in refill rounds (``Allocation.refill``), which the same rule screens,
so the epoch spends its budget unless the refills run out (``rollout.max_rounds``). A skipped prompt
comes back the next time the data brings it: the skip lasts one visit.
"""

from __future__ import annotations

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator
from gvmlit.allocation.rules import round_to_budget


class ZeroVarianceFilterAllocator(BudgetAllocator):
    """Uniform, minus the prompts whose last group carried no gradient; their slots refilled.

    Args:
        refill: ask for further prompts in place of the skipped ones (False: their samples go unspent).
    """

    name = "zero_variance_filter"

    def __init__(self, refill: bool = True) -> None:
        self.refill = refill
        self._skipped: dict[str, int] = {}  # uid → the epoch of the visit it was skipped for

    def allocate(self, request: AllocationRequest) -> Allocation:
        count = len(request.prompts)
        if count == 0:
            return Allocation(np.zeros(0, dtype=np.int64))
        store = request.store
        skipped = np.zeros(count, dtype=bool)
        for i, prompt in enumerate(request.prompts):
            epochs = store.history(prompt.uid).epochs()
            # its last group carried no gradient, and it has not been skipped for that visit yet
            if epochs and store.zero_variance_streak(prompt.uid, request.useful) > 0 and self._skipped.get(prompt.uid) != epochs[-1]:
                skipped[i] = True
                self._skipped[prompt.uid] = epochs[-1]
        samples = round_to_budget(np.ones(count), self.main_budget(request)) * ~skipped
        return Allocation(
            samples.astype(np.int64), metrics={"skipped_prompts": float(skipped.mean())}, refill=int(skipped.sum()) if self.refill else 0
        )

    def state_dict(self) -> dict:
        return {"skipped": dict(self._skipped)}

    def load_state_dict(self, state: dict) -> None:
        self._skipped = {uid: int(epoch) for uid, epoch in state.get("skipped", {}).items()}
