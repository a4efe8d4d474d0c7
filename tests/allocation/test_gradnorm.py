"""Batched per-sample gradient norms equal one backward pass per sample."""

import numpy as np
import pytest
import torch

from gvmlit.allocation.gradnorm import embeddings_tied, grad_norm_one_at_a_time, grad_norms_of_rollouts
from gvmlit.records import Rollout
from gvmlit.policy import TinyCharPolicy


def _rollouts(tokenizer, count=9, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        prompt = tokenizer(f"{rng.integers(0, 999)}+{rng.integers(0, 99)}=")["input_ids"]
        # varying lengths, repeated tokens (the same-token terms of the Gram matrix matter)
        response = rng.integers(4, 20, size=rng.integers(1, 14)).tolist() + [tokenizer.eos_token_id]
        out.append(Rollout(prompt, response, 1.0, 1.0, i))
    return out


@pytest.mark.parametrize(("param_slice", "tied"), [("embedding", False), ("lm_head", False), ("embedding", True), ("lm_head", True)])
def test_batched_grad_norms_equal_one_at_a_time(param_slice, tied):
    model, tokenizer = TinyCharPolicy(hidden_size=32, num_layers=2, num_heads=2, tie_embeddings=tied, seed=1).load()
    model.eval()
    assert embeddings_tied(model) == tied
    rollouts = _rollouts(tokenizer)
    batched = grad_norms_of_rollouts(model, rollouts, tokenizer.pad_token_id, param_slice, batch_size=4)
    reference = np.array([grad_norm_one_at_a_time(model, r, tokenizer.pad_token_id, param_slice) for r in rollouts])
    assert reference.min() > 0
    np.testing.assert_allclose(batched, reference, rtol=1e-4)
    if tied:  # θs is the one shared matrix, whichever name selects it
        other = "lm_head" if param_slice == "embedding" else "embedding"
        np.testing.assert_allclose(grad_norms_of_rollouts(model, rollouts, tokenizer.pad_token_id, other), batched, rtol=1e-4)


def test_grad_norms_leave_model_untouched(tiny_policy):
    model, tokenizer = tiny_policy
    before = [p.detach().clone() for p in model.parameters()]
    grad_norms_of_rollouts(model, _rollouts(tokenizer, 3), tokenizer.pad_token_id)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize(("param_slice", "tied"), [("embedding", False), ("lm_head", False), ("embedding", True), ("lm_head", True)])
def test_pad_ids_inside_sequences_add_nothing_to_the_embedding_gradient(param_slice, tied):
    """The pad id is the embedding's padding_idx, whose row gets no gradient; a policy can still sample
    it mid-response (and prompts can hold it). Such positions must not count in G (they did: G was
    inflated up to 3×, 21× with tied weights)."""
    model, tokenizer = TinyCharPolicy(hidden_size=32, num_layers=2, num_heads=2, tie_embeddings=tied, seed=2).load()
    model.eval()
    pad = tokenizer.pad_token_id
    assert model.get_input_embeddings().padding_idx == pad
    rng = np.random.default_rng(3)
    rollouts = []
    for i in range(8):
        prompt = tokenizer(f"{rng.integers(0, 99)}+{rng.integers(0, 9)}=")["input_ids"]
        prompt = prompt[:2] + [pad, pad] + prompt[2:]  # pad ids inside the prompt
        response = rng.integers(4, 20, size=rng.integers(3, 12)).tolist()
        response[1:1] = [pad] * int(rng.integers(1, 4))  # … and sampled inside the response
        rollouts.append(Rollout(prompt, response + [tokenizer.eos_token_id], 1.0, 1.0, i))
    batched = grad_norms_of_rollouts(model, rollouts, pad, param_slice, batch_size=3)
    reference = np.array([grad_norm_one_at_a_time(model, r, pad, param_slice) for r in rollouts])
    np.testing.assert_allclose(batched, reference, rtol=1e-4)
