"""The BudgetAllocator seam: which pilot samples to draw, then integers n_i per prompt.

An allocator never calls back into the learner. Each epoch the learner asks it three things
(docs/method.md §3, the two stages of GVM's practical algorithm):

1. ``plan_pilots(prompts, store, epoch)`` — N′_i pilot samples per prompt (0 = none). The learner
   draws and verifies them and records them in the :class:`~gvmlit.allocation.store.PromptStatsStore`.
2. ``grad_norm_samples(prompt, group, accepted, purpose)`` — which of a prompt's scored samples need
   a gradient norm G (default: none). The learner computes them, batched, and records their mean in
   the store. Asked for the pilots and for the main draws alike.
3. ``allocate(request)`` — a function of the statistics: the main draw n_i ≥ 0 per prompt, with
   Σ_i (kept pilots_i + n_i) = N exactly when pilots are kept (``keep_pilots``), Σ_i n_i = N when they
   are discarded (then they come on top of N, as in the paper).

Every sample drawn for any of these purposes is counted in the budget the learner logs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gvmlit.allocation.store import PromptStatsStore, SamplePurpose
from gvmlit.records import Completion, PromptRecord

ParamSlice = Literal["embedding", "lm_head"]
#: what makes a prompt's group of samples useful to the learner: rewards that differ (GRPO: an
#: all-equal group has zero advantages) or at least one accepted sample (RAFT trains on those)
UsefulGroup = Literal["mixed", "accepted"]


@dataclass
class AllocationRequest:
    """What an allocator knows when it decides the epoch's n_i.

    Attributes:
        prompts: the epoch's prompts.
        pilots: the scored pilot samples of each prompt (empty lists without pilots).
        pilot_accepted: for each pilot sample, whether it reached the acceptance threshold.
        budget: N, the epoch's samples per the recipe (``samples_per_prompt`` × prompts).
        epoch: the epoch (EM iteration) being prepared.
        store: every earlier observation, and this epoch's pilots and their gradient norms.
        useful: what makes a group useful to this learner (``mixed`` for GRPO, ``accepted`` for RAFT).
    """

    prompts: list[PromptRecord]
    pilots: list[list[Completion]]
    pilot_accepted: list[list[bool]]
    budget: int
    epoch: int
    store: PromptStatsStore
    useful: UsefulGroup = "mixed"

    @property
    def pilot_counts(self) -> np.ndarray:
        return np.array([len(group) for group in self.pilots], dtype=np.int64)


@dataclass
class Allocation:
    """An allocator's decision for one epoch.

    Attributes:
        samples: n_i, the main draw of each prompt (pilots not included).
        acceptance_rate: p̂_i the decision used, when it used one (logged as a histogram and scatter).
        grad_norm: Ĝ_i the decision used, when it used one.
        metrics: scalars the allocator wants in TensorBoard (logged as ``allocation/<name>``).
        histograms: per-prompt arrays it wants in TensorBoard (``allocation/<name>``).
    """

    samples: np.ndarray
    acceptance_rate: np.ndarray | None = None
    grad_norm: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)


class BudgetAllocator(ABC):
    """Decides how many samples n_i each prompt of the epoch gets.

    Class attributes a subclass may set:
        keep_pilots: pilot samples are trained on and paid from the budget N (True), or discarded and
            drawn on top of N (False, GVM as published).
        param_slice: θs of the gradient norms it asks for (``embedding`` or ``lm_head``).
    """

    keep_pilots: bool = True
    param_slice: ParamSlice = "embedding"

    def plan_pilots(self, prompts: Sequence[PromptRecord], store: PromptStatsStore, epoch: int) -> list[int]:
        """N′_i per prompt. Default: no pilots."""
        del store, epoch
        return [0] * len(prompts)

    def grad_norm_samples(
        self, prompt: PromptRecord, group: Sequence[Completion], accepted: Sequence[bool], purpose: SamplePurpose
    ) -> list[int]:
        """Indices into ``group`` whose gradient norm G the allocator needs. Default: none."""
        del prompt, group, accepted, purpose
        return []

    @abstractmethod
    def allocate(self, request: AllocationRequest) -> Allocation:
        """The epoch's main draws n_i (see the module docstring for what they must sum to)."""

    def main_budget(self, request: AllocationRequest) -> int:
        """Σ n_i this allocator must hand out: N minus the kept pilots (never below 0), or N."""
        if not self.keep_pilots:
            return request.budget
        return max(request.budget - int(request.pilot_counts.sum()), 0)

    def state_dict(self) -> dict:
        """State the allocator keeps itself (saved with the learner's checkpoint); the store is saved apart."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state


def accepted_indices(accepted: Sequence[bool]) -> list[int]:
    """Indices of the accepted samples."""
    return [i for i, ok in enumerate(accepted) if ok]
