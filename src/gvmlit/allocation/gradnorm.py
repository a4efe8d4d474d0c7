"""Per-sample gradient norms G = ‖∇_θs (−Σ_t log π(y_t | x, y_<t))‖₂, batched (docs/method.md §3, stage 1).

θs is a small parameter slice: the token-embedding matrix E (reference code) or the output matrix W
of ``lm_head``; when the two are tied, θs is the shared matrix and both contributions are summed.

One forward and one backward over the whole batch give every sample's gradient exactly, without
materialising per-sample gradients of the [V, d] matrices:

- embedding: ∇_E L_j = Σ_p e_{x_p} g_pᵀ with g_p = ∂L_j/∂(input embedding at p), so
  ‖∇_E L_j‖² = Σ_{p,q: x_p = x_q} ⟨g_p, g_q⟩  (a masked Gram matrix, [L, L] per sample);
- lm_head: ∇_W L_j = Σ_t δ_t h_tᵀ with δ_t = softmax(z_t) − e_{y_t} and h_t the input of lm_head, so
  ‖∇_W L_j‖² = Σ_{t,s} ⟨δ_t, δ_s⟩ ⟨h_t, h_s⟩;
- tied: ‖∇_E + ∇_W‖² = both of the above + 2 Σ_{p,t} δ_t[x_p] ⟨g_p, h_t⟩.

Samples do not interact inside a batch (each attends only to itself), so the gradient of the summed
loss with respect to sample j's activations is sample j's own gradient.

The embedding's ``padding_idx`` row never receives a gradient (``nn.Embedding`` skips it), so
positions holding that token — also *inside* a sequence, where a policy may sample it — contribute
nothing to the embedding part (they still do to ``lm_head``, a plain linear layer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gvmlit.allocation.base import ParamSlice
from gvmlit.collate import collate_rollouts
from gvmlit.records import Completion, Rollout


def embeddings_tied(model: torch.nn.Module) -> bool:
    head = model.get_output_embeddings()
    return head is not None and head.weight is model.get_input_embeddings().weight


def _batch_grad_norms(model: torch.nn.Module, batch: dict[str, torch.Tensor], param_slice: ParamSlice) -> torch.Tensor:
    """Gradient norms for one collated batch: [B]."""
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    mask = batch["response_mask"].to(torch.float32)  # [B, L-1]
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = embeddings_tied(model)
    want_embedding = param_slice == "embedding" or tied
    want_head = param_slice == "lm_head" or tied

    inputs_embeds = embed(input_ids).detach().requires_grad_(want_embedding)  # [B, L, d]
    captured: dict[str, torch.Tensor] = {}

    def keep_head_input(_module, args):
        captured["h"] = args[0]

    hook = head.register_forward_pre_hook(keep_head_input)
    try:
        with torch.enable_grad():
            logits = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False).logits
            logits = logits[:, :-1].float()  # [B, L-1, V]
            targets = input_ids[:, 1:]
            logprobs = torch.log_softmax(logits, dim=-1)
            token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            loss = -(token_lp * mask).sum()  # Σ_j L_j, each L_j summed over its response tokens
            grad_embeds = torch.autograd.grad(loss, inputs_embeds)[0].float() if want_embedding else None
    finally:
        hook.remove()

    squared = torch.zeros(input_ids.shape[0], dtype=torch.float32, device=input_ids.device)
    # positions whose input token can move the embedding matrix: every token but padding_idx
    padding_idx = getattr(embed, "padding_idx", None)
    moves_embedding = (input_ids != padding_idx).float() if padding_idx is not None else torch.ones_like(input_ids, dtype=torch.float32)
    if want_embedding:
        same_token = (input_ids.unsqueeze(2) == input_ids.unsqueeze(1)).float()  # [B, L, L]
        same_token = same_token * moves_embedding.unsqueeze(2) * moves_embedding.unsqueeze(1)
        gram = grad_embeds @ grad_embeds.transpose(1, 2)  # [B, L, L]
        squared = squared + (same_token * gram).sum((1, 2))
    if want_head:
        with torch.no_grad():
            h = captured["h"][:, :-1].detach().float() * mask.unsqueeze(-1)  # [B, L-1, d]
            delta = torch.softmax(logits.detach(), dim=-1)
            delta = delta - torch.nn.functional.one_hot(targets, delta.shape[-1]).float()
            delta = delta * mask.unsqueeze(-1)  # [B, L-1, V]
            squared = squared + ((delta @ delta.transpose(1, 2)) * (h @ h.transpose(1, 2))).sum((1, 2))
            if tied:
                # δ_t[x_p] for every (t, p): [B, L-1, L]
                delta_at_inputs = delta.gather(-1, input_ids.unsqueeze(1).expand(-1, delta.shape[1], -1))
                cross = delta_at_inputs * moves_embedding.unsqueeze(1) * (h @ grad_embeds.transpose(1, 2))
                squared = squared + 2.0 * cross.sum((1, 2))
    return squared.clamp(min=0.0).sqrt()


def grad_norms_of_rollouts(
    model: torch.nn.Module,
    rollouts: Sequence[Rollout],
    pad_id: int,
    param_slice: ParamSlice = "embedding",
    batch_size: int = 64,
) -> np.ndarray:
    """‖∇_θs (−log π(response | prompt))‖₂ for every rollout, ``batch_size`` sequences per backward pass."""
    if param_slice not in ("embedding", "lm_head"):
        raise ValueError(f"param_slice must be 'embedding' or 'lm_head', got {param_slice!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # no dropout: the norm of the policy's own gradient
    norms = []
    try:
        for start in range(0, len(rollouts), batch_size):
            batch = collate_rollouts(list(rollouts[start : start + batch_size]), pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            norms.append(_batch_grad_norms(model, batch, param_slice).cpu())
    finally:
        model.train(was_training)
    return torch.cat(norms).numpy() if norms else np.zeros(0)


def grad_norms(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    completions: Sequence[Completion],
    pad_id: int,
    param_slice: ParamSlice = "embedding",
    batch_size: int = 64,
) -> np.ndarray:
    """G of every completion ``completions[j]`` of prompt ``prompt_ids[j]`` under ``model`` (a function of
    the policy and the completions only)."""
    rollouts = [Rollout(list(p), c.token_ids, 0.0, 0.0, j) for j, (p, c) in enumerate(zip(prompt_ids, completions))]
    return grad_norms_of_rollouts(model, rollouts, pad_id, param_slice, batch_size)


def grad_norm_one_at_a_time(model: torch.nn.Module, rollout: Rollout, pad_id: int, param_slice: ParamSlice) -> float:
    """Reference computation: one backward pass, the norm of the parameter's own ``.grad`` (tests, bench)."""
    param = (model.get_input_embeddings() if param_slice == "embedding" else model.get_output_embeddings()).weight
    batch = collate_rollouts([rollout], pad_id)
    batch = {k: v.to(param.device) for k, v in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    loss = -(lp * batch["response_mask"]).sum()
    (grad,) = torch.autograd.grad(loss, param)
    return float(grad.float().norm())
