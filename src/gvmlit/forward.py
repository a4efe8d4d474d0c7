"""One forward pass of a causal LM over a collated batch, shared by training and π_old recomputation."""

from __future__ import annotations

import torch

from gvmlit.losses import token_logprobs


def batch_logprobs(model: torch.nn.Module, batch: dict[str, torch.Tensor], temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of ``input_ids[:, 1:]`` with the logits divided by ``temperature``.

    Returns:
        (logprobs [B, L-1], logits [B, L-1, V])
    """
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1]
    return token_logprobs(logits, batch["input_ids"][:, 1:], temperature), logits
