"""GRPO with ragged groups (docs/method.md §4): a prompt's n_i responses form one group of any size.

Advantage A_j = (r_j − mean_g) / (std_g + ε) within the group (``groups.normalize_std: false`` gives
Dr. GRPO's r_j − mean_g; with ``loss.aggregation: dr_grpo`` its constant length normaliser too); the loss
is the PPO clipped surrogate with ratio π_θ/π_old, per token or per sequence (GSPO, ``loss.ratio``),
π_old recomputed by the trainer's policy before the first optimiser step, plus an optional k3 KL to
the initial policy.

Groups of size 1 have no baseline of their own (the reference code silently uses the raw reward as
the advantage: ``singleton_groups: reward``). gvmlit's default drops them (they are counted:
``rollout/untrained_sample_share``); ``zero`` keeps them with A = 0, ``batch_mean`` uses A = r − the
mean reward of the epoch. With ``filter_zero_variance`` the groups that carry no gradient
(all-correct, all-wrong: gvmlit.groups) are dropped from the batch; ``dynamic_sampling`` adds DAPO's
refill rounds (docs/method.md §7). The share of such groups is logged either way as
``rollout/zero_variance_groups``.
"""

from __future__ import annotations

import torch

from gvmlit.algorithms.rollout import RolloutAlgorithm, Round, clipped_policy_loss
from gvmlit.algorithms.settings import EvaluationSettings, GroupSettings, LossSettings, Optimization, RolloutSettings
from gvmlit.allocation import BudgetAllocator
from gvmlit.errors import GvmlitError
from gvmlit.losses import group_advantages
from gvmlit.policy import PolicyLoader
from gvmlit.sampling import Sampler
from gvmlit.verifiers import Verifier


class GRPO(RolloutAlgorithm):
    """Group Relative Policy Optimisation over ragged groups (a prompt's samples form its group).

    Args:
        policy: how to build the policy and tokenizer (``PretrainedPolicy`` or ``TinyCharPolicy``; LoRA with ``lora``).
        sampler: draws completions from the live policy (default: ``HFSampler``).
        verifier: scores completions against their prompt records (default: ``ArithmeticVerifier``).
        allocator: decides n_i per prompt, i.e. each group's size (default: ``UniformAllocator``).
        eval_sampler: sampling settings for evaluation (default: ``sampler``).
        groups: advantages within groups (std normalisation, singletons, zero-variance filter, DAPO's
            dynamic sampling).
        rollout: the budget and the E-step (samples per prompt, acceptance threshold, rounds, pilots).
        loss: the loss (clip range, token or sequence ratio, aggregation, KL, mismatch correction).
        optim: the optimiser (learning rate, warm-up, …).
        evaluation: held-out evaluation (samples per problem, pass@k / maj@k, benchmark average).
    """

    needs_old_logprobs = True
    useful_group = "mixed"

    def __init__(
        self,
        policy: PolicyLoader | None = None,
        sampler: Sampler | None = None,
        verifier: Verifier | None = None,
        allocator: BudgetAllocator | None = None,
        eval_sampler: Sampler | None = None,
        groups: GroupSettings = GroupSettings(),
        rollout: RolloutSettings = RolloutSettings(),
        loss: LossSettings = LossSettings(),
        optim: Optimization = Optimization(),
        evaluation: EvaluationSettings = EvaluationSettings(),
    ) -> None:
        super().__init__(
            policy=policy, sampler=sampler, verifier=verifier, allocator=allocator, eval_sampler=eval_sampler,
            rollout=rollout, loss=loss, optim=optim, evaluation=evaluation,
        )  # fmt: skip
        self.groups = groups

    @property
    def filters_zero_variance(self) -> bool:
        return self.groups.filter_zero_variance or self.groups.dynamic_sampling

    def check_compatibility(self) -> None:
        super().check_compatibility()
        if self.rollout.samples_per_prompt < 2 and self.groups.singleton_groups == "drop":
            raise GvmlitError(
                "GRPO needs groups of 2 samples or more, but rollout.samples_per_prompt is 1 and groups.singleton_groups is "
                "'drop': every group would be dropped (raise samples_per_prompt, or choose another singleton rule)"
            )

    def refill_wanted(self, rounds: list[Round], left: int) -> tuple[int, bool]:
        """DAPO's dynamic sampling: another epoch's worth of prompts while fewer groups than the epoch has
        prompts carry a gradient (those rounds spend beyond the budget, as DAPO does); else the allocator's."""
        count, beyond = super().refill_wanted(rounds, left)
        if self.groups.dynamic_sampling:
            per_epoch = self.data.prompts_per_epoch
            if self.informative_groups([g for r in rounds for g in r.groups]) < per_epoch:
                return max(count, per_epoch), True
        return count, beyond

    def rollout_advantages(self, rewards, accepted, group_ids, useful):
        advantages, keep = group_advantages(rewards, group_ids, self.groups.normalize_std, self.groups.std_eps, self.groups.singleton_groups)
        groups, first, sizes = torch.unique(group_ids, return_inverse=True, return_counts=True)
        flat = ~useful & (sizes[first] >= 2)  # [B]: in a group of 2 or more that carries no gradient
        if self.filters_zero_variance:
            keep = keep & useful
        if self.groups.dynamic_sampling:  # train on as many groups as the other arms: the first per_epoch useful ones
            useful_groups = torch.unique(group_ids[useful])[: self.data.prompts_per_epoch]
            keep = keep & torch.isin(group_ids, useful_groups)
        metrics = {
            "rollout/zero_variance_groups": torch.unique(group_ids[flat]).numel() / max(groups.numel(), 1),
            "rollout/singleton_groups": float((sizes == 1).float().mean()) if sizes.numel() else 0.0,
            "rollout/advantage_abs_mean": float(advantages[keep].abs().mean()) if keep.any() else 0.0,
        }
        return advantages, keep, metrics

    def policy_loss(self, logprobs, batch):
        return clipped_policy_loss(logprobs, batch, self.loss)
