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

from gvmlit.algorithms.rollout import RolloutAlgorithm, clipped_policy_loss
from gvmlit.algorithms.settings import EvaluationSettings, LossSettings, Optimization, RolloutSettings
from gvmlit.allocation import BudgetAllocator
from gvmlit.losses import nll, raft_advantages
from gvmlit.policy import PolicyLoader
from gvmlit.sampling import Sampler
from gvmlit.verifiers import Verifier


class RAFT(RolloutAlgorithm):
    """RAFT / RAFT++ on the learner's own rollouts (a group is useful to it when it holds an accepted sample).

    Args:
        policy: how to build the policy and tokenizer (``PretrainedPolicy`` or ``TinyCharPolicy``; LoRA with ``lora``).
        sampler: draws completions from the live policy (default: ``HFSampler``).
        verifier: scores completions against their prompt records (default: ``ArithmeticVerifier``).
        allocator: decides n_i per prompt (default: ``UniformAllocator``).
        eval_sampler: sampling settings for evaluation (default: ``sampler``).
        variant: ``raft`` (NLL on accepted) or ``raft++`` (clipped importance ratio).
        keep_rejected: keep rejected responses in the batch with A = 0 (they then count in the
            token-mean denominator and the KL term, as in the reference code); default drops them.
        rollout: the budget and the E-step (samples per prompt, acceptance threshold, rounds, pilots).
        loss: the loss (clip range for RAFT++, aggregation, KL, mismatch correction).
        optim: the optimiser (learning rate, warm-up, …).
        evaluation: held-out evaluation (samples per problem, pass@k / maj@k, benchmark average).
    """

    useful_group = "accepted"

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        sampler: Sampler | None = None,
        verifier: Verifier | None = None,
        allocator: BudgetAllocator | None = None,
        eval_sampler: Sampler | None = None,
        variant: Literal["raft", "raft++"] = "raft",
        keep_rejected: bool = False,
        rollout: RolloutSettings = RolloutSettings(),
        loss: LossSettings = LossSettings(),
        optim: Optimization = Optimization(),
        evaluation: EvaluationSettings = EvaluationSettings(),
    ) -> None:
        super().__init__(
            policy=policy, sampler=sampler, verifier=verifier, allocator=allocator, eval_sampler=eval_sampler,
            rollout=rollout, loss=loss, optim=optim, evaluation=evaluation,
        )  # fmt: skip
        self.variant = variant
        self.keep_rejected = keep_rejected
        self.needs_old_logprobs = variant == "raft++"

    def rollout_advantages(self, rewards, accepted, group_ids, useful):
        advantages = raft_advantages(accepted.float(), threshold=1.0)
        keep = torch.ones_like(accepted, dtype=torch.bool) if self.keep_rejected else accepted.bool()
        return advantages, keep, {}

    def policy_loss(self, logprobs, batch):
        if self.variant == "raft":
            return nll(logprobs, batch["advantages"]), {}
        return clipped_policy_loss(logprobs, batch, self.loss)
