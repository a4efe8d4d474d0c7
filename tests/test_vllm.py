"""VLLMSampler against the real vLLM engine — runs where ``vllm`` imports and a CUDA GPU exists.

Skipped elsewhere (CI has neither; vLLM is the optional extra ``gvmlit[vllm]``). The tiny policy is
built from a config (head dimension 64, which every vLLM attention backend supports) and served by
vLLM from its config alone: the weights always come from the training policy through the sync.
"""

from __future__ import annotations

import pytest
import torch

vllm = pytest.importorskip("vllm", reason="vLLM is not installed (optional extra gvmlit[vllm], GPU only)")
if not torch.cuda.is_available():
    pytest.skip("vLLM needs a CUDA GPU", allow_module_level=True)

from gvmlit.data.collate import Rollout, collate_rollouts  # noqa: E402
from gvmlit.forward import batch_logprobs  # noqa: E402
from gvmlit.policy import TinyCharPolicy  # noqa: E402
from gvmlit.sampling import HFSampler, VLLMSampler  # noqa: E402


@pytest.fixture(scope="module")
def policy():
    model, tokenizer = TinyCharPolicy(hidden_size=128, num_layers=2, num_heads=2, max_length=128, seed=0).load()
    return model.cuda().eval(), tokenizer


@pytest.fixture(scope="module")
def sampler():
    return VLLMSampler(
        temperature=1.0, max_new_tokens=24, gpu_memory_utilization=0.2, dtype="float32", enforce_eager=True,
        sleep_between_rollouts=False,
    )  # fmt: skip


def _prompts(tokenizer):
    return [tokenizer(p)["input_ids"] for p in ("12+7=", "3+4+5=", "40+2=")]


def test_ragged_requests_and_logprobs_match_the_policy(policy, sampler):
    model, tokenizer = policy
    sampler.prepare(model)
    groups = sampler.generate(model, tokenizer, _prompts(tokenizer), [3, 0, 5])
    assert [len(g) for g in groups] == [3, 0, 5]
    rollouts = []
    for prompt, group in zip(_prompts(tokenizer), groups):
        for c in group:
            assert len(c.logprobs) == len(c.token_ids) > 0
            rollouts.append(Rollout(prompt, c.token_ids, 0.0, 0.0, 0, c.logprobs))
    batch = collate_rollouts(rollouts, tokenizer.pad_token_id, temperature=1.0)
    with torch.no_grad():
        trainer_logprobs, _ = batch_logprobs(model, {k: v.cuda() for k, v in batch.items()})
    mask = batch["response_mask"]
    diff = (trainer_logprobs.cpu() - batch["sampler_logprobs"]).abs()[mask]
    assert float(diff.mean()) < 1e-3 and float(diff.max()) < 1e-2


def test_weights_follow_the_policy_after_a_sync(policy, sampler):
    model, tokenizer = policy
    prompts = _prompts(tokenizer)
    hf = HFSampler(max_new_tokens=24, progress=False)
    sampler.prepare(model)
    before = [g[0].token_ids for g in sampler.generate(model, tokenizer, prompts, [1, 1, 1], greedy=True)]
    assert before == [g[0].token_ids for g in hf.generate(model, tokenizer, prompts, [1, 1, 1], greedy=True)]
    with torch.no_grad():  # an "update": the engine must not keep serving the old weights
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    sampler.prepare(model)
    after = [g[0].token_ids for g in sampler.generate(model, tokenizer, prompts, [1, 1, 1], greedy=True)]
    assert after != before
    assert after == [g[0].token_ids for g in hf.generate(model, tokenizer, prompts, [1, 1, 1], greedy=True)]
