"""GRPO with ragged groups (method.md §4): a prompt's n_i responses form one group of any size.

Advantage A_j = (r_j − mean_g) / (std_g + ε) within the group (``normalize_std: false`` gives
Dr. GRPO's r_j − mean_g); the loss is the PPO clipped surrogate with ratio π_θ/π_old, π_old recomputed
by the trainer's policy before the first optimiser step, plus an optional k3 KL to the initial policy.

Groups of size 1 have no baseline of their own (the reference code silently uses the raw reward as
the advantage). gvmlit's default drops them; ``singleton_groups`` switches to ``zero`` (kept with A = 0)
or ``batch_mean`` (A = r − mean reward of the epoch). With ``filter_zero_variance`` (DAPO's dynamic
sampling) all-correct and all-wrong groups, whose advantages are all 0, are dropped from the batch;
the fraction of dropped groups is logged either way as ``rollout/zero_variance_groups``.
"""

from __future__ import annotations

from typing import Literal

import torch

from gvmlit.algorithms.base import RolloutAlgorithm
from gvmlit.errors import GvmlitError
from gvmlit.losses import SingletonGroups, group_advantages
from gvmlit.policy import PolicyLoader


def zero_variance_groups(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """[B] bool: the sample belongs to a group (of size ≥ 2) whose rewards are all equal."""
    groups, inverse = torch.unique(group_ids, return_inverse=True)
    low = torch.full((groups.numel(),), float("inf")).scatter_reduce(0, inverse, rewards, "amin")
    high = torch.full((groups.numel(),), float("-inf")).scatter_reduce(0, inverse, rewards, "amax")
    size = torch.zeros(groups.numel()).index_add_(0, inverse, torch.ones_like(rewards))
    return ((low == high) & (size >= 2))[inverse]


class GRPO(RolloutAlgorithm):
    """Group Relative Policy Optimisation over the RolloutDataModule's ragged groups.

    Args:
        policy: how to build the policy and tokenizer.
        clip_low: ε_low of the ratio clip.
        clip_high: ε_high of the ratio clip (DAPO's clip-higher when larger than clip_low).
        normalize_std: divide by the group's standard deviation (false = Dr. GRPO).
        std_eps: ε added to the standard deviation.
        singleton_groups: advantage rule for groups of size 1: ``drop`` (default), ``zero``, ``batch_mean``.
        filter_zero_variance: drop all-correct and all-wrong groups (DAPO dynamic sampling).
        lr, weight_decay, warmup_steps, kl_coef, nonfinite: see ``RolloutAlgorithm``.
        aggregation: ``token_mean`` (over the mini-batch, reference code), ``seq_mean_token_mean``
            (mean of per-sequence token means, the GRPO paper) or ``prompt_mean`` (every group weighs the same).
    """

    needs_old_logprobs = True

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        clip_low: float = 0.2,
        clip_high: float = 0.28,
        normalize_std: bool = True,
        std_eps: float = 1e-6,
        singleton_groups: SingletonGroups = "drop",
        filter_zero_variance: bool = False,
        lr: float = 1e-6,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        kl_coef: float = 0.0,
        aggregation: str = "token_mean",
        nonfinite: Literal["stop", "skip"] = "stop",
    ) -> None:
        super().__init__(policy, lr, weight_decay, warmup_steps, kl_coef, aggregation, nonfinite)
        if singleton_groups not in ("drop", "zero", "batch_mean"):
            raise GvmlitError(f"model.singleton_groups must be drop, zero or batch_mean, got {singleton_groups!r}")
        self.clip_low = clip_low
        self.clip_high = clip_high
        self.normalize_std = normalize_std
        self.std_eps = std_eps
        self.singleton_groups = singleton_groups
        self.filter_zero_variance = filter_zero_variance

    def rollout_advantages(self, rewards, accepted, group_ids):
        advantages, keep = group_advantages(rewards, group_ids, self.normalize_std, self.std_eps, self.singleton_groups)
        flat = zero_variance_groups(rewards, group_ids)
        if self.filter_zero_variance:
            keep = keep & ~flat
        groups = torch.unique(group_ids)
        flat_groups = torch.unique(group_ids[flat]).numel()
        sizes = torch.bincount(torch.unique(group_ids, return_inverse=True)[1])
        metrics = {
            "rollout/zero_variance_groups": flat_groups / max(groups.numel(), 1),
            "rollout/singleton_groups": float((sizes == 1).float().mean()) if sizes.numel() else 0.0,
            "rollout/advantage_abs_mean": float(advantages[keep].abs().mean()) if keep.any() else 0.0,
        }
        return advantages, keep, metrics

    def policy_loss(self, logprobs, batch):
        return self.clipped_policy_loss(logprobs, batch)
