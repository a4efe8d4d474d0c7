"""The BudgetAllocator seam: which prompts to screen, which pilot samples to draw, then n_i per prompt.

An allocator never calls back into the learner: it answers questions, and what it wants more of it
asks for in its answers. Each epoch the learner runs one or more *rounds* (docs/allocation.md):

0. ``candidates(prompts_per_epoch)`` — how many prompts to look at this epoch (default: the epoch's
   own). More than ``prompts_per_epoch`` screens extra candidates (Pilot-Commit); the data module
   supplies them from a stream of their own.
1. ``plan_pilots(PilotRequest)`` — N′_i pilot samples per prompt (0 = none), asked again stage after
   stage (``request.stage``, with every pilot drawn so far) until it answers all zeros: staged pilots,
   e.g. more only for prompts whose first pilots were ambiguous. The learner draws and verifies them and
   records each stage as a visit in the :class:`~gvmlit.allocation.store.PromptStatsStore`.
2. ``grad_norm_samples(prompt, group, accepted, purpose)`` — which of a prompt's scored samples need a
   gradient norm G (default: none). The learner computes them, batched, and records their mean.
3. ``allocate(AllocationRequest)`` — the round's main draw n_i ≥ 0 per prompt, and optionally
   ``Allocation.refill``: how many further prompts to draw in another round (skipped prompts' slots,
   GRESO's refill, GVM++ re-spending what it saved). The next round's budget is what is left of the
   epoch's, so refills never exceed it.

**The budget.** The epoch's budget is N = ``samples_per_prompt`` × ``prompts_per_epoch``. Kept pilots
(``keep_pilots``) are paid from it; discarded pilots come on top of it (GVM as published) and are
counted all the same. An allocation may spend *less* than its budget (``allocation/unspent_samples``
logs it), never more: the learner refuses an allocation above :meth:`BudgetAllocator.main_budget`.
:func:`~gvmlit.allocation.rules.capped_allocation` spreads a budget under per-prompt caps without forcing
it all to be spent; :func:`~gvmlit.allocation.rules.bounded_allocation` spends it exactly.

Every sample drawn for any of these purposes is counted in the budget the learner logs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gvmlit.allocation.store import PromptStatsStore, SamplePurpose, Visit
from gvmlit.groups import UsefulGroup
from gvmlit.records import Completion, PromptRecord

#: θs of a gradient norm: the token-embedding matrix, the output matrix, or every parameter that trains
#: (with LoRA: the adapters)
ParamSlice = Literal["embedding", "lm_head", "trainable"]


@dataclass
class PilotRequest:
    """What an allocator knows when it plans a stage of pilot samples.

    Attributes:
        prompts: the round's prompts.
        store: every earlier observation (this epoch's earlier pilot stages included).
        epoch: the epoch (EM iteration) being prepared.
        stage: 0 for the first pilots of the round, then 1, 2, … (``rollout.max_pilot_stages`` at most).
        pilots: the scored pilot samples of each prompt drawn in earlier stages of this round.
        pilot_accepted: for each of them, whether it reached the acceptance threshold.
        budget: the round's budget (kept pilots are paid from it).
        round: 0 for the epoch's own prompts, then 1, 2, … for refills.
        useful: what makes a group useful to this learner (``mixed`` for GRPO, ``accepted`` for RAFT).
    """

    prompts: list[PromptRecord]
    store: PromptStatsStore
    epoch: int
    stage: int = 0
    pilots: list[list[Completion]] = field(default_factory=list)
    pilot_accepted: list[list[bool]] = field(default_factory=list)
    budget: int = 0
    round: int = 0
    useful: UsefulGroup = "mixed"

    @property
    def pilot_counts(self) -> np.ndarray:
        """Pilot samples drawn so far this round, per prompt."""
        return np.array([len(group) for group in self.pilots] if self.pilots else [0] * len(self.prompts), dtype=np.int64)


@dataclass
class AllocationRequest:
    """What an allocator knows when it decides a round's n_i.

    Attributes:
        prompts: the round's prompts (the epoch's own and screened candidates in round 0, refills later).
        pilots: the scored pilot samples of each prompt, all stages (empty lists without pilots).
        pilot_accepted: for each pilot sample, whether it reached the acceptance threshold.
        budget: the round's budget: N = ``samples_per_prompt`` × ``prompts_per_epoch`` in round 0, what
            is left of it in a refill round (kept pilots are paid from it: :meth:`BudgetAllocator.main_budget`).
        epoch: the epoch (EM iteration) being prepared.
        store: every earlier observation, and this epoch's pilots (one visit per stage) and their
            gradient norms.
        useful: what makes a group useful to this learner (``mixed`` for GRPO, ``accepted`` for RAFT).
        round: 0, then 1, 2, … for refill rounds.
        epoch_budget: N, the whole epoch's budget.
        target_prompts: the prompts an epoch trains on per the recipe (``data.prompts_per_epoch``).
        sampled_prompts: prompts that got main draws in this epoch's earlier rounds.
    """

    prompts: list[PromptRecord]
    pilots: list[list[Completion]]
    pilot_accepted: list[list[bool]]
    budget: int
    epoch: int
    store: PromptStatsStore
    useful: UsefulGroup = "mixed"
    round: int = 0
    epoch_budget: int | None = None
    target_prompts: int | None = None
    sampled_prompts: int = 0

    @property
    def pilot_counts(self) -> np.ndarray:
        """N′_i drawn this round (all stages), per prompt."""
        return np.array([len(group) for group in self.pilots], dtype=np.int64)

    @property
    def pilot_successes(self) -> np.ndarray:
        """Accepted pilot samples this round, per prompt."""
        return np.array([sum(ok) for ok in self.pilot_accepted], dtype=np.int64)

    def pilot_visits(self, index: int) -> list[Visit]:
        """The pilot stages of prompt ``index`` this epoch, one :class:`Visit` per stage (samples,
        accepted, tokens, reward range)."""
        return self.store.history(self.prompts[index].uid).in_epoch(self.epoch, "pilot")


@dataclass
class Allocation:
    """An allocator's decision for one epoch.

    Attributes:
        samples: n_i, the main draw of each prompt (pilots not included).
        acceptance_rate: p̂_i the decision used, when it used one (logged as a histogram and scatter).
        grad_norm: Ĝ_i the decision used, when it used one.
        metrics: scalars the allocator wants in TensorBoard (logged as ``allocation/<name>``).
        histograms: per-prompt arrays it wants in TensorBoard (``allocation/<name>``).
        refill: further prompts to draw in another round of this epoch, funded by what is left of the
            epoch's budget (0 = none; ``rollout.max_rounds`` bounds the rounds).
    """

    samples: np.ndarray
    acceptance_rate: np.ndarray | None = None
    grad_norm: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    refill: int = 0


class BudgetAllocator(ABC):
    """Decides how many samples n_i each prompt of the epoch gets.

    Class attributes a subclass may set:
        keep_pilots: pilot samples are trained on and paid from the budget N (True), or discarded and
            drawn on top of N (False, GVM as published).
        param_slice: θs of the gradient norms it asks for (``embedding``, ``lm_head``, or ``trainable``:
            every linear layer that trains — with LoRA, the adapters).
        name: a short name for run directories and study tables (default: from the class name).
    """

    keep_pilots: bool = True
    param_slice: ParamSlice = "embedding"

    @property
    def short_name(self) -> str:
        """A short name for run directories and tables (``gvmpp`` for GVMPlusPlusAllocator); a class may set
        ``name`` to choose its own."""
        own = getattr(type(self), "name", None)
        if isinstance(own, str) and own:
            return own
        cls = type(self).__name__
        return (cls[: -len("Allocator")] if cls.endswith("Allocator") and cls != "Allocator" else cls).lower().replace("plusplus", "pp")

    def candidates(self, prompts_per_epoch: int) -> int:
        """How many prompts round 0 screens (≥ ``prompts_per_epoch``). Default: the epoch's own."""
        return prompts_per_epoch

    def plan_pilots(self, request: PilotRequest) -> list[int]:
        """N′_i per prompt for pilot stage ``request.stage``; all zeros ends the pilots. Default: none."""
        return [0] * len(request.prompts)

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
        """The most Σ n_i may be: the round's budget minus the kept pilots (never below 0), or the
        round's budget when pilots are discarded."""
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
