"""The padding collate that turns rollouts into training batches."""

from __future__ import annotations

import torch

from gvmlit.records import Rollout


def collate_rollouts(items: list[Rollout], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad prompt+response into one batch.

    Returns tensors (L = longest prompt+response in the batch):
        input_ids, attention_mask: [B, L]
        response_mask, old_logprobs, sampler_logprobs, correction: [B, L-1], aligned with the targets
            input_ids[:, 1:] (``correction``: the mismatch-correction weights, 1 where a rollout has none)
        advantages, rewards, group_ids: [B]
    An empty list gives an empty batch (B = 0), which the training step skips.
    """
    width = max((len(r.prompt_ids) + len(r.response_ids) for r in items), default=1)
    batch = len(items)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)
    response_mask = torch.zeros((batch, width - 1), dtype=torch.bool)
    old_logprobs = torch.zeros((batch, width - 1), dtype=torch.float32)
    sampler_logprobs = torch.zeros((batch, width - 1), dtype=torch.float32)
    correction = torch.zeros((batch, width - 1), dtype=torch.float32)
    for row, item in enumerate(items):
        p, r = len(item.prompt_ids), len(item.response_ids)
        input_ids[row, : p + r] = torch.tensor(item.prompt_ids + item.response_ids, dtype=torch.long)
        attention_mask[row, : p + r] = 1
        # target position t predicts input token t+1: the response occupies targets p-1 … p+r-2
        response_mask[row, p - 1 : p + r - 1] = True
        if item.old_logprobs is not None:
            old_logprobs[row, p - 1 : p + r - 1] = torch.tensor(item.old_logprobs)
        if item.sampler_logprobs is not None:
            sampler_logprobs[row, p - 1 : p + r - 1] = torch.tensor(item.sampler_logprobs)
        correction[row, p - 1 : p + r - 1] = torch.tensor(item.correction) if item.correction is not None else 1.0
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "response_mask": response_mask,
        "old_logprobs": old_logprobs,
        "sampler_logprobs": sampler_logprobs,
        "correction": correction,
        "advantages": torch.tensor([r.advantage for r in items], dtype=torch.float32),
        "rewards": torch.tensor([r.reward for r in items], dtype=torch.float32),
        "group_ids": torch.tensor([r.group for r in items], dtype=torch.long),
    }
