"""Loss math as pure tensor functions (docs/method.md §4, eqs. 8–11). No Lightning in here.

Shapes: ``B`` sequences, ``T`` token positions (the response part of prompt+response, aligned so that
position t scores token t+1 of the input), ``V`` vocabulary.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

Aggregation = Literal["token_mean", "seq_mean_token_mean", "prompt_mean", "dapo", "dr_grpo", "grpo", "bnpo"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)
#: TRL's loss_type names that are gvmlit's own modes under another name
TRL_NAMES: dict[str, str] = {"grpo": "seq_mean_token_mean", "bnpo": "token_mean"}
RatioLevel = Literal["token", "sequence"]
SingletonGroups = Literal["drop", "zero", "batch_mean", "reward"]


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log π(target_t | …) from logits [B, T, V] and targets [B, T], with logits divided by temperature."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [B, T]


def processed_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
    min_p_first: bool = False,
) -> torch.Tensor:
    """log-probs [B, T] of ``targets`` under the distribution a sampler actually draws from: logits / T,
    then top-k, top-p (nucleus) and min-p truncation, renormalised — transformers' order; vLLM applies
    min-p before top-k / top-p (``min_p_first``). A target outside the kept set gets −inf. ``top_k = 0``,
    ``top_p = 1``, ``min_p = 0``: off.
    """
    logits = logits.float() / temperature
    if min_p > 0.0 and min_p_first:
        probs = torch.softmax(logits, dim=-1)
        logits = logits.masked_fill(probs < min_p * probs.max(dim=-1, keepdim=True).values, float("-inf"))
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        probs = torch.softmax(logits, dim=-1)
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        # a token is dropped when the mass of the tokens before it already reaches top_p (the top one stays)
        drop_sorted = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    if min_p > 0.0 and not min_p_first:
        probs = torch.softmax(logits, dim=-1)
        logits = logits.masked_fill(probs < min_p * probs.max(dim=-1, keepdim=True).values, float("-inf"))
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


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
    level: RatioLevel = "token",
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate per token (RAFT++ and GRPO, docs/method.md eq. 9):

        loss_t = −min(s_t·A, clip(s_t, 1−ε_low, 1+ε_high)·A),   s_t = π_θ/π_old

    ``level="sequence"`` is GSPO's ratio (Zheng et al., 2025): one ratio per sequence, the geometric mean
    s = exp(mean_t log(π_θ/π_old)) over its response tokens (``mask`` [B, T] needed), clipped with the
    range given; every token of the sequence then carries the same loss, as in TRL.

    With ``dual_clip`` c (> 1, verl's ``clip_ratio_c``), a token with A < 0 loses at most −c·A: a
    stale ratio far above 1 cannot push its loss without bound (Ye et al., 2020; the reference code
    runs c = 3).

    Args:
        logprobs, old_logprobs: [B, T]. advantages: [B] (one per sequence).
    Returns:
        (loss [B, T], clipped [B, T], ratio [B, T]): ``clipped`` marks tokens whose clipped branch was
        active; ``ratio`` is the (token or sequence) ratio each token used.
    """
    log_ratio = logprobs - old_logprobs
    if level == "sequence":
        if mask is None:
            raise ValueError("a sequence-level ratio needs the response mask")
        weights = mask.to(log_ratio.dtype)
        per_sequence = (log_ratio * weights).sum(-1, keepdim=True) / weights.sum(-1, keepdim=True).clamp(min=1.0)
        log_ratio = per_sequence.expand_as(logprobs)
    elif level != "token":
        raise ValueError(f"unknown ratio level {level!r}; allowed: token, sequence")
    ratio = torch.exp(log_ratio)
    adv = advantages.unsqueeze(-1).to(ratio.dtype)
    unclipped = -ratio * adv
    clipped = -torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    loss = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        loss = torch.where(adv < 0, torch.minimum(loss, -dual_clip * adv), loss)
    return loss, (clipped > unclipped), ratio.detach()


def correction_weights(
    trainer_logprobs: torch.Tensor,
    sampler_logprobs: torch.Tensor,
    mask: torch.Tensor,
    level: RatioLevel = "token",
    action: Literal["truncate", "mask"] = "truncate",
    cap: float = 2.0,
) -> torch.Tensor:
    """Importance weights [B, T] correcting the rollout–trainer mismatch (docs/method.md eq. 13):
    w = π_trainer / π_sampler of the sampled tokens, per token or per sequence (the product of its token
    ratios), with weights above ``cap`` truncated to it (``truncate``) or set to 0 (``mask``). Zero
    outside ``mask``. Both log-probs are of the distribution the sampler draws from (its processing
    applied), so a sampler that computes exactly what the trainer does gives w = 1.
    """
    mask = mask.to(torch.float32)
    log_w = torch.where(mask > 0, trainer_logprobs.float() - sampler_logprobs.float(), 0.0)  # −inf outside the response stays out
    if level == "sequence":
        log_w = log_w.sum(-1, keepdim=True).expand_as(mask)
    elif level != "token":
        raise ValueError(f"unknown correction level {level!r}; allowed: token, sequence")
    w = torch.exp(log_w.clamp(max=20.0))
    w = torch.clamp(w, max=cap) if action == "truncate" else torch.where(w > cap, torch.zeros_like(w), w)
    return w * mask


def mismatch_statistics(trainer_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None) -> dict[str, float]:
    """How far the sampler's log-probs are from the trainer's on the sampled tokens (``mask`` [B, T]):
    ``kl`` = KL(π_sampler ‖ π_trainer) per token by the k3 estimator (samples come from the sampler),
    ``abs_logprob_diff`` = mean |log π_sampler − log π_trainer|, and with ``weights`` their mean, min and
    max and the share of tokens whose weight was cut (capped or masked: w ≠ its raw value)."""
    mask = mask.bool()
    if not mask.any():
        return {}
    diff = (trainer_logprobs.float() - sampler_logprobs.float())[mask]  # log(π_t / π_s)
    stats = {"kl": float((torch.exp(diff) - diff - 1.0).mean()), "abs_logprob_diff": float(diff.abs().mean())}
    if weights is not None:
        w = weights[mask]
        stats.update({"weight_mean": float(w.mean()), "weight_min": float(w.min()), "weight_max": float(w.max())})
        stats["weight_cut_share"] = float((~torch.isclose(w, torch.exp(diff))).float().mean()) if w.shape == diff.shape else 0.0
    return stats


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
    *,
    global_tokens: float | None = None,
    world_size: int = 1,
    max_tokens: int | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss [B, T] over response tokens (``mask`` [B, T]) to a scalar
    (docs/method.md §4 "aggregation": how each mode weighs prompts with different numbers of samples).

    - ``token_mean`` (TRL's ``bnpo``): Σ loss / Σ tokens over the mini-batch (reference code; long
      responses, and prompts with more samples, weigh more).
    - ``seq_mean_token_mean`` (TRL's ``grpo``): the mean over sequences of each sequence's token mean
      (the paper's formula; every sequence weighs the same, so a prompt weighs by its number of samples).
    - ``prompt_mean``: each sequence's token mean, averaged within each prompt's group, then over
      prompts: every prompt present weighs the same, whatever its number of samples (the paper's
      per-prompt estimator, ĝ = Σ_i 1/|D_i| Σ_{y∈D_i} …). Needs ``group_ids`` [B].
    - ``dapo``: Σ loss / (``global_tokens`` / ``world_size``), with ``global_tokens`` the response tokens of
      this optimiser step on all ranks: after the ranks' gradients are averaged, the token mean over
      the whole step (TRL's ``dapo``). On one process it equals ``token_mean``.
    - ``dr_grpo``: Σ loss / (B × ``max_tokens``), a constant normaliser (Dr. GRPO, Liu et al., 2025).
    Sequences with no response token are ignored.
    """
    mode = TRL_NAMES.get(mode, mode)
    mask = mask.to(per_token.dtype)
    total = (per_token * mask).sum()
    if mode == "token_mean":
        return total / mask.sum().clamp(min=1.0)
    if mode == "dapo":
        tokens = float(mask.sum()) if global_tokens is None else float(global_tokens)
        return total / max(tokens / world_size, 1e-8)
    if mode == "dr_grpo":
        if max_tokens is None:
            raise ValueError("dr_grpo aggregation needs max_tokens (the sampler's max_new_tokens)")
        return total / max(per_token.shape[0] * max_tokens, 1)
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
