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

``trainable`` takes every linear layer whose weight trains — with LoRA, the adapter matrices A and B of
every adapted module. For a linear layer y_t = W x_t the same identity gives
‖∇_W L_j‖² = Σ_{t,s} ⟨x_t, x_s⟩ ⟨g_t, g_s⟩ with g_t = ∂L_j/∂y_t: one forward and one backward with hooks
that keep each layer's inputs and output gradients. (Trainable parameters outside linear layers, such as
norm weights, are not counted.)

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


def _trainable_linear_grad_norms(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Gradient norms over every trainable linear layer for one collated batch: [B]."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.weight.requires_grad]
    if not layers:
        raise ValueError("param_slice 'trainable': the model has no trainable linear layer")
    inputs: dict[torch.nn.Module, torch.Tensor] = {}
    outputs: dict[torch.nn.Module, torch.Tensor] = {}

    def keep_input(module, args, output):
        inputs[module] = args[0].detach()
        outputs[module] = output

    hooks = [layer.register_forward_hook(keep_input) for layer in layers]
    try:
        with torch.enable_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits[:, :-1].float()
            token_lp = torch.log_softmax(logits, dim=-1).gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
            loss = -(token_lp * batch["response_mask"].float()).sum()
            grads = torch.autograd.grad(loss, [outputs[layer] for layer in layers], allow_unused=True)
    finally:
        for hook in hooks:
            hook.remove()
    squared = torch.zeros(batch["input_ids"].shape[0], dtype=torch.float32, device=batch["input_ids"].device)
    for layer, grad in zip(layers, grads):
        if grad is None:
            continue
        x, g = inputs[layer].float().flatten(1, -2), grad.float().flatten(1, -2)  # [B, L, d_in], [B, L, d_out]
        squared += ((x @ x.transpose(1, 2)) * (g @ g.transpose(1, 2))).sum((1, 2))
        if layer.bias is not None and layer.bias.requires_grad:
            squared += g.sum(1).pow(2).sum(-1)
    return squared.clamp(min=0.0).sqrt()


def _batch_grad_norms(model: torch.nn.Module, batch: dict[str, torch.Tensor], param_slice: ParamSlice) -> torch.Tensor:
    """Gradient norms for one collated batch: [B]."""
    if param_slice == "trainable":
        return _trainable_linear_grad_norms(model, batch)
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
    if param_slice not in ("embedding", "lm_head", "trainable"):
        raise ValueError(f"param_slice must be 'embedding', 'lm_head' or 'trainable', got {param_slice!r}")
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
    """Reference computation: one backward pass, the norm of the parameters' own gradients (tests, bench)."""
    if param_slice == "trainable":
        params = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear) and m.weight.requires_grad]
    else:
        params = [(model.get_input_embeddings() if param_slice == "embedding" else model.get_output_embeddings()).weight]
    batch = collate_rollouts([rollout], pad_id)
    batch = {k: v.to(params[0].device) for k, v in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    loss = -(lp * batch["response_mask"]).sum()
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
