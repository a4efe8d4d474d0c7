"""Loss math as pure tensor functions (docs/method.md §4, eqs. 8–11). No Lightning in here.

Shapes: ``B`` sequences, ``T`` token positions (the response part of prompt+response, aligned so that
position t scores token t+1 of the input), ``V`` vocabulary.
"""

from __future__ import annotations

from typing import Literal

import torch

Aggregation = Literal["token_mean", "seq_mean_token_mean", "prompt_mean"]
AGGREGATIONS: tuple[str, ...] = ("token_mean", "seq_mean_token_mean", "prompt_mean")
SingletonGroups = Literal["drop", "zero", "batch_mean", "reward"]


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log π(target_t | …) from logits [B, T, V] and targets [B, T], with logits divided by temperature."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [B, T]


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of the token distribution at every position: [B, T, V] → [B, T]."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def nll(logprobs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Vanilla RAFT / SFT per-token loss: −w_j · log π(y_t), weights [B] (1[accepted] for RAFT)."""
    return -logprobs * weights.unsqueeze(-1)


def clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate per token (RAFT++ and GRPO, docs/method.md eq. 9):

        loss_t = −min(s_t·A, clip(s_t, 1−ε_low, 1+ε_high)·A),   s_t = π_θ/π_old

    With ``dual_clip`` c (> 1, verl's ``clip_ratio_c``), a token with A < 0 loses at most −c·A: a
    stale ratio far above 1 cannot push its loss without bound (Ye et al., 2020; the reference code
    runs c = 3).

    Args:
        logprobs, old_logprobs: [B, T]. advantages: [B] (one per sequence).
    Returns:
        (loss [B, T], clipped [B, T]) where ``clipped`` marks tokens whose clipped branch was active.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(-1).to(ratio.dtype)
    unclipped = -ratio * adv
    clipped = -torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    loss = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        loss = torch.where(adv < 0, torch.minimum(loss, -dual_clip * adv), loss)
    return loss, (clipped > unclipped)


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, log_ratio_clamp: float = 20.0, value_clamp: float = 10.0) -> torch.Tensor:
    """The k3 ("low_var_kl") estimator of KL(π_θ ‖ π_ref) per token (docs/method.md eq. 11):
    e^r − r − 1 with r = log π_ref − log π_θ.

    Non-negative and unbiased under samples from π_θ. As in the reference code (verl), r is clamped to
    ±``log_ratio_clamp`` before the exponential and the per-token value capped at ``value_clamp``, so
    one token far off the reference cannot dominate the loss or overflow.
    """
    log_ratio = torch.clamp(ref_logprobs - logprobs, -log_ratio_clamp, log_ratio_clamp)
    return torch.clamp(torch.exp(log_ratio) - log_ratio - 1.0, max=value_clamp)


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    mode: Aggregation = "token_mean",
    group_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss [B, T] over response tokens (``mask`` [B, T]) to a scalar.

    - ``token_mean``: Σ loss / Σ tokens over the whole mini-batch (reference code; long responses weigh more).
    - ``seq_mean_token_mean``: the mean over sequences of each sequence's token mean (the paper's formula).
    - ``prompt_mean``: the token mean of each sequence, averaged within each prompt's group, then over
      prompts: every prompt present weighs the same, whatever its number of samples (the paper's
      per-prompt estimator, ĝ = Σ_i 1/|D_i| Σ_{y∈D_i} …). Needs ``group_ids`` [B].
    Sequences with no response token are ignored.
    """
    mask = mask.to(per_token.dtype)
    if mode == "token_mean":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    tokens = mask.sum(-1)  # [B]
    has_tokens = tokens > 0
    seq_mean = (per_token * mask).sum(-1) / tokens.clamp(min=1.0)  # [B]
    if mode == "seq_mean_token_mean":
        if not has_tokens.any():
            return per_token.sum() * 0.0
        return seq_mean[has_tokens].mean()
    if mode == "prompt_mean":
        if group_ids is None:
            raise ValueError("prompt_mean aggregation needs group_ids")
        groups, inverse = torch.unique(group_ids[has_tokens], return_inverse=True)
        if groups.numel() == 0:
            return per_token.sum() * 0.0
        sums = torch.zeros(groups.numel(), dtype=per_token.dtype, device=per_token.device)
        counts = torch.zeros_like(sums)
        sums.index_add_(0, inverse, seq_mean[has_tokens])
        counts.index_add_(0, inverse, torch.ones_like(seq_mean[has_tokens]))
        return (sums / counts).mean()
    raise ValueError(f"unknown aggregation {mode!r}; allowed: {', '.join(AGGREGATIONS)}")


def raft_advantages(rewards: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """RAFT's advantage 1[accepted]: 1 where the reward reaches ``threshold``, else 0 (reward clipped at 0)."""
    return (rewards >= threshold).to(torch.float32)


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    normalize_std: bool = True,
    eps: float = 1e-6,
    singleton: SingletonGroups = "drop",
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO advantages for ragged groups: A_j = (r_j − mean_g) / (std_g + ε) within each group g.

    ``std_g`` is the unbiased sample standard deviation (as torch.std and the reference code). With
    ``normalize_std=False`` (Dr. GRPO) A_j = r_j − mean_g. A group of size 1 has no baseline of its own:
    ``singleton`` decides — ``"drop"`` (default: the sample is not trained on), ``"zero"`` (kept with
    A = 0, it still counts in token-mean denominators and KL), ``"batch_mean"`` (A = r − mean reward
    over the batch, no std scaling), ``"reward"`` (A = r, its raw reward: what the reference code does).

    Returns:
        (advantages [B], keep [B] bool)
    """
    rewards = rewards.to(torch.float32)
    groups, inverse = torch.unique(group_ids, return_inverse=True)
    count = torch.zeros(groups.numel()).index_add_(0, inverse, torch.ones_like(rewards))
    total = torch.zeros(groups.numel()).index_add_(0, inverse, rewards)
    mean = total / count
    centred = rewards - mean[inverse]
    sq = torch.zeros(groups.numel()).index_add_(0, inverse, centred**2)
    std = torch.sqrt(sq / (count - 1).clamp(min=1.0))
    advantages = centred / (std[inverse] + eps) if normalize_std else centred
    alone = count[inverse] == 1
    keep = torch.ones_like(rewards, dtype=torch.bool)
    if singleton == "drop":
        advantages = torch.where(alone, torch.zeros_like(advantages), advantages)
        keep = ~alone
    elif singleton == "zero":
        advantages = torch.where(alone, torch.zeros_like(advantages), advantages)
    elif singleton == "batch_mean":
        advantages = torch.where(alone, rewards - rewards.mean(), advantages)
    elif singleton == "reward":
        advantages = torch.where(alone, rewards, advantages)
    else:
        raise ValueError(f"unknown singleton rule {singleton!r}; allowed: drop, zero, batch_mean, reward")
    return advantages, keep
