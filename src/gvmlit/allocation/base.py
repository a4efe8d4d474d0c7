"""The BudgetAllocator seam: per-prompt statistics and a total budget N in, integers n_i out.

An allocator works in two stages, as GVM's practical algorithm (method.md §3):

1. ``estimate`` — optionally spend *pilot* samples on the live policy to measure per-prompt
   statistics (acceptance rate p_i, gradient norm G_i). The data module passes a
   :class:`RolloutEngine` that samples, verifies, counts and computes gradient norms.
2. ``allocate`` — a pure function of those statistics: integers n_i ≥ 0 with Σ n_i = N exactly.

After the epoch's samples are drawn and verified, ``observe`` lets an allocator that learns across
epochs (GVM++) update its estimates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from gvmlit.allocation.store import PromptStatsStore

if TYPE_CHECKING:  # data imports allocation; the type is only needed for annotations
    from gvmlit.data.records import PromptRecord


@dataclass
class ScoredCompletion:
    """A completion with its reward (what the rollout engine hands back)."""

    token_ids: list[int]
    text: str
    logprobs: list[float]
    finish_reason: str
    reward: float


@dataclass
class PromptStats:
    """Per-prompt statistics for one epoch's prompts (arrays indexed like ``uids``).

    Attributes:
        uids: prompt identifiers.
        acceptance_rate: p_i, fraction of pilot samples accepted (None when not estimated).
        grad_norm: G_i, mean gradient norm over accepted pilot samples (None when not estimated).
        pilot: the pilot completions per prompt, when the allocator keeps them for training.
        budget_spent: samples of this epoch's budget N already spent on pilots (GVM++ counts its
            kept pilots in the budget; GVM's discarded pilots come on top of N, as in the paper).
    """

    uids: list[str]
    acceptance_rate: np.ndarray | None = None
    grad_norm: np.ndarray | None = None
    pilot: list[list[ScoredCompletion]] | None = None
    budget_spent: int = 0
    extra: dict = field(default_factory=dict)


class RolloutEngine(Protocol):
    """What an allocator may ask of the data side during estimation."""

    #: per-prompt statistics across epochs (acceptance history, G estimates, samples spent)
    store: PromptStatsStore
    #: the current epoch (= EM iteration)
    epoch: int

    def sample(self, prompts: Sequence[PromptRecord], num_samples: Sequence[int], purpose: str) -> list[list[ScoredCompletion]]:
        """Sample and verify ``num_samples[i]`` completions of ``prompts[i]``; counted under ``purpose``."""

    def grad_norms(
        self,
        prompts: Sequence[PromptRecord],
        completions: Sequence[Sequence[ScoredCompletion]],
        param_slice: str = "embedding",
        batch_size: int = 64,
    ) -> list[np.ndarray]:
        """‖∇_θs (−log π(y|x))‖₂ for every given completion, batched; one array per prompt."""

    def is_accepted(self, reward: float) -> bool:
        """Whether a reward counts as accepted (reaches the acceptance threshold)."""


class BudgetAllocator(ABC):
    """Decides how many samples n_i each prompt of the epoch gets, with Σ n_i = budget."""

    def estimate(self, prompts: Sequence[PromptRecord], engine: RolloutEngine) -> PromptStats:
        """Stage 1: measure per-prompt statistics. The default spends nothing and measures nothing."""
        return PromptStats(uids=[p.uid for p in prompts])

    @abstractmethod
    def allocate(self, stats: PromptStats, budget: int) -> np.ndarray:
        """Stage 2: integer n_i ≥ 0 per prompt, summing exactly to ``budget``."""

    def observe(self, prompts: Sequence[PromptRecord], groups: Sequence[Sequence[ScoredCompletion]], engine: RolloutEngine) -> None:
        """Called with the epoch's verified samples (pilots included when kept). Default: nothing."""
        del prompts, groups, engine

    def state_dict(self) -> dict:
        """Persistent per-prompt state (saved with the Lightning checkpoint)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state
