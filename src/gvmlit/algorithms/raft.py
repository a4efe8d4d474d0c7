"""RAFT and RAFT++ (docs/method.md §4): rejection sampling, then fine-tuning on the accepted responses.

- ``raft``: supervised NLL on accepted responses — advantage A = 1[accepted].
- ``raft++``: the PPO-clipped importance-weighted version,
  loss_t = −min(s_t·A, clip(s_t, 1−ε_low, 1+ε_high)·A) with s_t = π_θ/π_old and A = 1[accepted],
  needed when several optimiser steps are taken per rollout batch (``data.update_epochs`` > 1 or
  several mini-batches). π_old is recomputed by the trainer's policy before the first step.
"""

from __future__ import annotations

from typing import Literal

import torch

from gvmlit.algorithms.rollout import RolloutAlgorithm
from gvmlit.losses import clipped_surrogate, nll, raft_advantages


class RAFT(RolloutAlgorithm):
    """RAFT / RAFT++ on the learner's own rollouts (a group is useful to it when it holds an accepted sample).

    Args:
        variant: ``raft`` (NLL on accepted) or ``raft++`` (clipped importance ratio).
        clip_low: ε_low, lower clip range of the ratio (RAFT++).
        clip_high: ε_high, upper clip range of the ratio (RAFT++; the paper uses 0.28–0.4).
        keep_rejected: keep rejected responses in the batch with A = 0 (they then count in the
            token-mean denominator and the KL term, as in the reference code); default drops them.
        dual_clip: c of the dual clip for negative advantages (RAFT++ and GRPO; None = off; the reference
            code runs 3.0; RAFT++'s advantages are never negative, so it only matters for GRPO).
        **kwargs: the arguments of ``RolloutAlgorithm`` and ``PolicyModule`` (policy, sampler,
            verifier, allocator, samples_per_prompt, lr, kl_coef, …).
    """

    def __init__(
        self,
        variant: Literal["raft", "raft++"] = "raft",
        clip_low: float = 0.2,
        clip_high: float = 0.28,
        keep_rejected: bool = False,
        dual_clip: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.useful_group = "accepted"
        self.dual_clip = dual_clip
        self.variant = variant
        self.clip_low = clip_low
        self.clip_high = clip_high
        self.keep_rejected = keep_rejected
        self.needs_old_logprobs = variant == "raft++"

    def rollout_advantages(self, rewards, accepted, group_ids):
        advantages = raft_advantages(accepted.float(), threshold=1.0)
        keep = torch.ones_like(accepted, dtype=torch.bool) if self.keep_rejected else accepted.bool()
        return advantages, keep, {}

    def policy_loss(self, logprobs, batch):
        if self.variant == "raft":
            return nll(logprobs, batch["advantages"]), {}
        return clipped_policy_loss(logprobs, batch, self.clip_low, self.clip_high, self.dual_clip)


def clipped_policy_loss(logprobs: torch.Tensor, batch: dict[str, torch.Tensor], clip_low: float, clip_high: float, dual_clip: float | None = None):
    """The PPO clipped surrogate against π_old (RAFT++ and GRPO), with its diagnostics per token."""
    loss, clipped = clipped_surrogate(logprobs, batch["old_logprobs"], batch["advantages"], clip_low, clip_high, dual_clip)
    ratio = torch.exp(logprobs.detach() - batch["old_logprobs"])
    return loss, {"clip_fraction": clipped.detach(), "ratio": ratio}
