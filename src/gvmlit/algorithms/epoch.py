"""What one epoch's E-step is made of and produces: its rounds (:class:`Round`) and the result the learner
trains on and the logger writes (:class:`EpochRollouts`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gvmlit.allocation import Allocation
from gvmlit.records import Completion, Prompt, PromptRecord, Rollout


@dataclass
class EpochRollouts:
    """What one epoch's E-step produced (the ``RolloutLogger`` callback logs it).

    Attributes:
        epoch: the epoch (EM iteration); step: the global step when it was collected.
        rollouts: this rank's weighted training sequences, π_old filled in when the loss needs it.
        prompts: the epoch's prompts, all rounds; groups: every scored sample of each that the update
            may train on (kept pilots included).
        allocation: the allocators' decisions of all rounds, joined (n_i, p̂_i, Ĝ_i, their own metrics).
        rounds: how many rounds the E-step took.
        metrics: scalars for the loggers; histograms: per-prompt arrays for the loggers.
        started: ``time.perf_counter()`` when the epoch began (epoch wall time).
    """

    epoch: int
    rollouts: list[Rollout]
    prompts: list[PromptRecord]
    groups: list[list[Completion]]
    allocation: Allocation
    rounds: int = 1
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, np.ndarray] = field(default_factory=dict)
    started: float = 0.0


@dataclass
class Round:
    """One round of an epoch's E-step: its prompts, the pilots drawn (all stages), the groups the update
    may train on (kept pilots included), the allocation, the round's main-draw budget, and the samples it
    spent from the epoch's budget (main draws, and kept pilots)."""

    prompts: list[Prompt]
    pilots: list[list[Completion]]
    groups: list[list[Completion]]
    allocation: Allocation
    budget: int
    spent: int

    @staticmethod
    def join(rounds: list[Round]) -> Round:
        """The rounds of an epoch as one (prompts, groups and per-prompt decisions concatenated)."""
        if len(rounds) == 1:
            return rounds[0]

        def joined(name: str):
            parts = [getattr(r.allocation, name) for r in rounds]
            return None if any(p is None for p in parts) else np.concatenate(parts)

        histograms = {k: np.concatenate([r.allocation.histograms[k] for r in rounds]) for k in rounds[0].allocation.histograms if all(k in r.allocation.histograms for r in rounds)}
        allocation = Allocation(joined("samples"), joined("acceptance_rate"), joined("grad_norm"), rounds[0].allocation.metrics, histograms)
        return Round(
            [p for r in rounds for p in r.prompts], [g for r in rounds for g in r.pilots], [g for r in rounds for g in r.groups],
            allocation, sum(r.budget for r in rounds), sum(r.spent for r in rounds),
        )  # fmt: skip
