"""When a prompt's group of samples teaches the learner something: one predicate for every part.

A GRPO update learns only from a group whose rewards differ (an all-correct or all-wrong group has
zero advantages); a RAFT update learns from a group with at least one accepted sample. The learner
says which notion it uses (``useful``), and the learner's epoch metrics, the prompt-statistics store
(zero-variance streaks), GRPO's zero-variance filter and the allocators all ask :func:`carries_gradient`.
"""

from __future__ import annotations

from typing import Literal

#: what makes a prompt's group of samples useful to the learner: rewards that differ (``mixed``, GRPO)
#: or at least one accepted sample (``accepted``, RAFT)
UsefulGroup = Literal["mixed", "accepted"]


def carries_gradient(samples: int, accepted: int, reward_min: float, reward_max: float, useful: UsefulGroup = "mixed") -> bool:
    """Whether a group of ``samples`` samples, ``accepted`` of them accepted and rewards in
    [``reward_min``, ``reward_max``], carries a gradient for a learner of kind ``useful``."""
    if useful == "accepted":
        return accepted > 0
    return samples >= 2 and reward_min != reward_max


def group_carries_gradient(group, useful: UsefulGroup = "mixed") -> bool:
    """:func:`carries_gradient` of a list of scored :class:`~gvmlit.records.Completion` (its ``reward``
    and ``accepted`` set)."""
    if not group:
        return False
    rewards = [c.reward for c in group]
    return carries_gradient(len(group), sum(bool(c.accepted) for c in group), min(rewards), max(rewards), useful)
