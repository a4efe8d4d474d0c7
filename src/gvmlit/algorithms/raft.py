"""RAFT and RAFT++ (method.md §4): rejection sampling, then fine-tuning on the accepted responses.

- ``raft``: supervised NLL on accepted responses — advantage A = 1[accepted].
- ``raft++``: the PPO-clipped importance-weighted version,
  loss_t = −min(s_t·A, clip(s_t, 1−ε_low, 1+ε_high)·A) with s_t = π_θ/π_old and A = 1[accepted],
  needed when several optimiser steps are taken per rollout batch (``data.update_epochs`` > 1 or
  several mini-batches). π_old is recomputed by the trainer's policy before the first step.
"""

from __future__ import annotations

from typing import Literal

import torch

from gvmlit.algorithms.base import RolloutAlgorithm
from gvmlit.errors import GvmlitError
from gvmlit.losses import nll, raft_advantages
from gvmlit.policy import PolicyLoader


class RAFT(RolloutAlgorithm):
    """RAFT / RAFT++ on the rollouts of the RolloutDataModule.

    Args:
        policy: how to build the policy and tokenizer.
        variant: ``raft`` (NLL on accepted) or ``raft++`` (clipped importance ratio).
        clip_low: ε_low, lower clip range of the ratio (RAFT++).
        clip_high: ε_high, upper clip range of the ratio (RAFT++; the paper uses 0.28–0.4).
        keep_rejected: keep rejected responses in the batch with A = 0 (they then count in the
            token-mean denominator and the KL term, as in the reference code); default drops them.
        lr, weight_decay, warmup_steps, kl_coef, aggregation, nonfinite: see ``RolloutAlgorithm``.
    """

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        variant: Literal["raft", "raft++"] = "raft",
        clip_low: float = 0.2,
        clip_high: float = 0.28,
        keep_rejected: bool = False,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        kl_coef: float = 0.0,
        aggregation: str = "token_mean",
        nonfinite: Literal["stop", "skip"] = "stop",
    ) -> None:
        super().__init__(policy, lr, weight_decay, warmup_steps, kl_coef, aggregation, nonfinite)
        if variant not in ("raft", "raft++"):
            raise GvmlitError(f"model.variant must be 'raft' or 'raft++', got {variant!r}")
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
        return self.clipped_policy_loss(logprobs, batch)
