"""GRPO with ragged groups (docs/method.md §4): a prompt's n_i responses form one group of any size.

Advantage A_j = (r_j − mean_g) / (std_g + ε) within the group (``normalize_std: false`` gives
Dr. GRPO's r_j − mean_g); the loss is the PPO clipped surrogate with ratio π_θ/π_old, π_old recomputed
by the trainer's policy before the first optimiser step, plus an optional k3 KL to the initial policy.

Groups of size 1 have no baseline of their own (the reference code silently uses the raw reward as
the advantage: ``singleton_groups: reward``). gvmlit's default drops them (they are counted:
``rollout/untrained_sample_share``); ``zero`` keeps them with A = 0, ``batch_mean`` uses A = r − the
mean reward of the epoch. With ``filter_zero_variance`` all-correct and
all-wrong groups, whose advantages are all 0, are dropped from the batch; ``dynamic_sampling`` adds
DAPO's refill (docs/method.md §7). The fraction of such groups is logged either way as
``rollout/zero_variance_groups``.
"""

from __future__ import annotations

import torch

from gvmlit.algorithms.raft import clipped_policy_loss
from gvmlit.algorithms.rollout import RolloutAlgorithm
from gvmlit.losses import SingletonGroups, group_advantages


def zero_variance_groups(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """[B] bool: the sample belongs to a group (of size ≥ 2) whose rewards are all equal."""
    groups, inverse = torch.unique(group_ids, return_inverse=True)
    low = torch.full((groups.numel(),), float("inf")).scatter_reduce(0, inverse, rewards, "amin")
    high = torch.full((groups.numel(),), float("-inf")).scatter_reduce(0, inverse, rewards, "amax")
    size = torch.zeros(groups.numel()).index_add_(0, inverse, torch.ones_like(rewards))
    return ((low == high) & (size >= 2))[inverse]


class GRPO(RolloutAlgorithm):
    """Group Relative Policy Optimisation over ragged groups (a prompt's samples form its group).

    Args:
        clip_low: ε_low of the ratio clip.
        clip_high: ε_high of the ratio clip (DAPO's clip-higher when larger than clip_low).
        normalize_std: divide by the group's standard deviation (false = Dr. GRPO).
        std_eps: ε added to the standard deviation.
        singleton_groups: advantage rule for groups of size 1: ``drop`` (default), ``zero``, ``batch_mean``,
            or ``reward`` (the raw reward, as the reference code does).
        dual_clip: c of the dual clip for negative advantages (None = off; the reference code runs 3.0).
        filter_zero_variance: drop all-correct and all-wrong groups from the batch (their advantages
            are all 0; they then no longer count in token-mean denominators).
        dynamic_sampling: DAPO's dynamic sampling: filter zero-variance groups, then draw further prompts
            (a full epoch's worth per round, allocated as usual) until the epoch has as many groups with a
            gradient as it has prompts, or ``refill_rounds`` rounds were drawn. Every sample is counted.
        refill_rounds: most refill rounds per epoch with ``dynamic_sampling``.
        **kwargs: the arguments of ``RolloutAlgorithm`` and ``PolicyModule`` (policy, sampler,
            verifier, allocator, samples_per_prompt, lr, kl_coef, aggregation, …).
    """

    needs_old_logprobs = True

    def __init__(
        self,
        clip_low: float = 0.2,
        clip_high: float = 0.28,
        normalize_std: bool = True,
        std_eps: float = 1e-6,
        singleton_groups: SingletonGroups = "drop",
        filter_zero_variance: bool = False,
        dynamic_sampling: bool = False,
        refill_rounds: int = 3,
        dual_clip: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.dual_clip = dual_clip
        if dynamic_sampling:  # DAPO: drop groups without a gradient, then sample more prompts to make up for them
            filter_zero_variance = True
            self.refill_rounds = refill_rounds
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
        _, sizes = torch.unique(group_ids, return_counts=True)
        flat_groups = torch.unique(group_ids[flat]).numel()
        metrics = {
            "rollout/zero_variance_groups": flat_groups / max(sizes.numel(), 1),
            "rollout/singleton_groups": float((sizes == 1).float().mean()) if sizes.numel() else 0.0,
            "rollout/advantage_abs_mean": float(advantages[keep].abs().mean()) if keep.any() else 0.0,
        }
        return advantages, keep, metrics

    def policy_loss(self, logprobs, batch):
        return clipped_policy_loss(logprobs, batch, self.clip_low, self.clip_high, self.dual_clip)
