"""Rollout throughput: VLLMSampler against HFSampler on the same policy and prompts, one run, one GPU.

    pip install 'gvmlit[vllm]'          # CUDA machine
    python bench/sampler_throughput.py                                  # models/arith-sft, 64 prompts × 8
    python bench/sampler_throughput.py --policy Qwen/Qwen2.5-Math-1.5B --prompts 64 --samples 8 --max-new-tokens 1024

Prints generated tokens per second of each sampler (median of ``--repeats`` rollouts after one warm-up,
weight sync included for vLLM, as in training) and the ratio vLLM / HF. Needs a GPU and vLLM; on any
other machine it says so and exits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def rollout_tokens_per_second(sampler, model, tokenizer, prompts, samples, repeats) -> float:
    rates = []
    for i in range(repeats + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        sampler.prepare(model)
        groups = sampler.generate(model, tokenizer, prompts, [samples] * len(prompts))
        sampler.release()
        torch.cuda.synchronize()
        tokens = sum(len(c.token_ids) for g in groups for c in g)
        if i > 0:  # the first run compiles / warms up
            rates.append(tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "models" / "arith-sft"))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/sampler_throughput.py needs a CUDA GPU")
    from gvmlit.data.arithmetic import ArithmeticTask
    from gvmlit.policy import PretrainedPolicy
    from gvmlit.sampling import HFSampler, VLLMSampler

    model, tokenizer = PretrainedPolicy(args.policy, dtype=args.dtype).load()
    model = model.cuda().eval()
    records = ArithmeticTask().records("train")[: args.prompts]
    prompts = [tokenizer(r.problem + "=")["input_ids"] for r in records]
    hf = HFSampler(max_new_tokens=args.max_new_tokens, batch_size=512, progress=False)
    vl = VLLMSampler(max_new_tokens=args.max_new_tokens, dtype=args.dtype, gpu_memory_utilization=0.5)
    hf_rate = rollout_tokens_per_second(hf, model, tokenizer, prompts, args.samples, args.repeats)
    vllm_rate = rollout_tokens_per_second(vl, model, tokenizer, prompts, args.samples, args.repeats)
    print(f"{args.prompts} prompts × {args.samples} samples, ≤ {args.max_new_tokens} new tokens, {args.dtype}, {torch.cuda.get_device_name()}")
    print(f"HFSampler   {hf_rate:10.0f} tokens/s")
    print(f"VLLMSampler {vllm_rate:10.0f} tokens/s  (weight sync included)")
    print(f"vLLM / HF = {vllm_rate / hf_rate:.2f}×")


if __name__ == "__main__":
    main()
