"""HFSampler on a real tiny Llama: ragged requests, log-probs, counting."""

import torch

from gvmlit.collate import collate_rollouts
from gvmlit.forward import batch_logprobs
from gvmlit.records import Rollout
from gvmlit.sampling import HFSampler


def _prompts(tokenizer, texts):
    return [tokenizer(t)["input_ids"] for t in texts]


def test_ragged_requests_return_exactly_n_i_including_zero(tiny_policy):
    model, tokenizer = tiny_policy
    sampler = HFSampler(max_new_tokens=12, batch_size=5, progress=False)
    counts = [3, 0, 1, 7, 0, 2]
    prompts = _prompts(tokenizer, ["1+2=", "3=", "45+6=", "7+8+9=", "1=", "22+33="])
    out = sampler.generate(model, tokenizer, prompts, counts)
    assert [len(group) for group in out] == counts
    for group in out:
        for c in group:
            assert 1 <= len(c.token_ids) <= 12
            assert len(c.logprobs) == len(c.token_ids)
            assert all(lp <= 0 for lp in c.logprobs)
            assert c.finish_reason == ("stop" if c.token_ids[-1] == tokenizer.eos_token_id else "length")
            assert c.finish_reason == "stop" or len(c.token_ids) == 12
    # all-zero request: nothing generated
    assert sampler.generate(model, tokenizer, prompts[:2], [0, 0]) == [[], []]


def test_sampler_logprobs_equal_trainer_recomputation(tiny_policy):
    """The sampler's log-probs (left-padded, KV cache) equal a right-padded training forward pass."""
    model, tokenizer = tiny_policy
    sampler = HFSampler(temperature=0.7, max_new_tokens=10, progress=False)
    prompts = _prompts(tokenizer, ["1+2=", "345+67+8="])
    out = sampler.generate(model, tokenizer, prompts, [2, 2])
    rollouts = [Rollout(prompts[i], c.token_ids, 0.0, 0.0, i, c.logprobs) for i, g in enumerate(out) for c in g]
    batch = collate_rollouts(rollouts, tokenizer.pad_token_id)
    with torch.no_grad():
        recomputed, _ = batch_logprobs(model, batch, temperature=0.7)
    mask = batch["response_mask"]
    assert torch.allclose(recomputed[mask], batch["sampler_logprobs"][mask], atol=1e-4)


def test_greedy_is_deterministic_and_temperature_changes_samples(tiny_policy):
    model, tokenizer = tiny_policy
    sampler = HFSampler(max_new_tokens=8, progress=False)
    prompts = _prompts(tokenizer, ["12+7="])
    a = sampler.generate(model, tokenizer, prompts, [3], greedy=True)[0]
    b = sampler.generate(model, tokenizer, prompts, [1], greedy=True)[0]
    assert a[0].token_ids == a[1].token_ids == a[2].token_ids == b[0].token_ids
    torch.manual_seed(0)
    sampled = sampler.generate(model, tokenizer, prompts * 1, [16])[0]
    assert len({tuple(c.token_ids) for c in sampled}) > 1
