"""Rollout throughput: VLLMSampler against HFSampler on the same policy and prompts, side by side in one run.

    python bench/sampler_throughput.py          # CUDA with vLLM, or CPU with vLLM's CPU build (.venv-vllm)
    python bench/sampler_throughput.py --policy Qwen/Qwen2.5-Math-1.5B --prompts 64 --samples 8 --max-new-tokens 1024

Runs on the device vLLM's platform runs on: a CUDA GPU (bfloat16) or, with vLLM's CPU build, the CPU
(float32, eager, ``--threads`` torch threads for both samplers). Prints generated tokens per second of
each sampler (median of ``--repeats`` rollouts after one warm-up, the samplers alternating; weight sync
included for vLLM, as in training), the ratio vLLM / HF, and the device both were measured on. Without vLLM it says so and exits.

    python bench/sampler_throughput.py --chunks 256 32    # what chunking costs: one generate call per rollout
                                                          # against chunks of 256 and of 32 prompts (vLLM only)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def rollout_tokens_per_second(sampler, model, tokenizer, prompts, samples, device) -> float:
    """One rollout as in training (prepare = weight sync for vLLM, generate, release), in tokens/s."""
    synchronize(device)
    start = time.perf_counter()
    sampler.prepare(model)
    groups = sampler.generate(model, tokenizer, prompts, [samples] * len(prompts))
    sampler.release()
    synchronize(device)
    return sum(len(c.token_ids) for g in groups for c in g) / (time.perf_counter() - start)


def measure(samplers: dict, model, tokenizer, prompts, samples, repeats, device) -> dict[str, list[float]]:
    """A warm-up rollout of each sampler (compilation, engine start), then ``repeats`` rounds that
    alternate the samplers, so that a change in the machine's load hits both alike."""
    for sampler in samplers.values():
        rollout_tokens_per_second(sampler, model, tokenizer, prompts, samples, device)
    rates: dict[str, list[float]] = {name: [] for name in samplers}
    for _ in range(repeats):
        for name, sampler in samplers.items():
            rates[name].append(rollout_tokens_per_second(sampler, model, tokenizer, prompts, samples, device))
    return rates


def device_label(device: str, threads: int) -> str:
    if device == "cuda":
        return f"CUDA, {torch.cuda.get_device_name()}"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}), {threads} torch threads on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(ROOT / "models" / "arith-sft"))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--chunks", type=int, nargs="+", default=None,
                        help="instead of HF against vLLM: vLLM in one generate call against chunks of these many prompts (VLLMSampler.chunk_prompts)")
    args = parser.parse_args()
    try:
        from vllm.platforms import current_platform
    except ImportError:
        sys.exit("bench/sampler_throughput.py needs vLLM: the CUDA build (pip install 'gvmlit[vllm]') or the CPU build (README, 'vLLM lane')")
    if current_platform.is_cuda() and torch.cuda.is_available():
        device = "cuda"
    elif current_platform.is_cpu():
        device = "cpu"
        torch.set_num_threads(args.threads)
    else:
        sys.exit(f"bench/sampler_throughput.py: vLLM's platform is {current_platform.device_type!r}; it runs on CUDA or CPU")
    dtype = args.dtype or ("bfloat16" if device == "cuda" else "float32")
    from gvmlit.data.arithmetic import ArithmeticTask
    from gvmlit.policy import PretrainedPolicy
    from gvmlit.sampling import HFSampler, VLLMSampler

    model, tokenizer = PretrainedPolicy(args.policy, dtype=dtype).load()
    model = model.to(device).eval()
    records = ArithmeticTask().records("train")[: args.prompts]
    prompts = [tokenizer(r.problem + "=")["input_ids"] for r in records]
    hf = HFSampler(max_new_tokens=args.max_new_tokens, batch_size=512, progress=False)
    engine = dict(dtype=dtype, progress=False)
    if device == "cuda":
        engine.update(gpu_memory_utilization=0.5)
    else:
        engine.update(enforce_eager=True, sleep_between_rollouts=False, kv_cache_gib=1.0)
    if args.chunks:
        return compare_chunks(args, engine, model, tokenizer, prompts, device)
    vl = VLLMSampler(max_new_tokens=args.max_new_tokens, **engine)
    rates = measure({"hf": hf, "vllm": vl}, model, tokenizer, prompts, args.samples, args.repeats, device)
    hf_rate, vllm_rate = statistics.median(rates["hf"]), statistics.median(rates["vllm"])
    spread = {name: f"{min(r):.0f}–{max(r):.0f}" for name, r in rates.items()}
    print(f"device: {device_label(device, torch.get_num_threads())}")
    print(f"{args.prompts} prompts × {args.samples} samples, ≤ {args.max_new_tokens} new tokens, {dtype}, {Path(args.policy).name}")
    print(f"median of {args.repeats} alternating rollouts after one warm-up each (range in brackets)")
    print(f"HFSampler   {hf_rate:10.0f} tokens/s  ({spread['hf']})")
    print(f"VLLMSampler {vllm_rate:10.0f} tokens/s  ({spread['vllm']}; weight sync included)")
    print(f"vLLM / HF = {vllm_rate / hf_rate:.2f}×  on {device}")


def compare_chunks(args, engine: dict, model, tokenizer, prompts, device: str) -> None:
    """vLLM with a rollout in one ``generate`` call against chunked calls (between chunks a stop signal is
    honoured), one engine per setting, alternating."""
    from gvmlit.sampling import VLLMSampler

    samplers = {"one call": VLLMSampler(max_new_tokens=args.max_new_tokens, chunk_prompts=None, **engine)}
    samplers |= {f"chunks of {c}": VLLMSampler(max_new_tokens=args.max_new_tokens, chunk_prompts=c, **engine) for c in args.chunks}
    rates = measure(samplers, model, tokenizer, prompts, args.samples, args.repeats, device)
    base = statistics.median(rates["one call"])
    print(f"device: {device_label(device, torch.get_num_threads())}")
    print(f"{len(prompts)} prompts × {args.samples} samples, ≤ {args.max_new_tokens} new tokens; median of {args.repeats} alternating rollouts")
    for name, r in rates.items():
        print(f"{name:14s} {statistics.median(r):10.0f} tokens/s  ({min(r):.0f}–{max(r):.0f})  {statistics.median(r) / base:.2f}× one call")


if __name__ == "__main__":
    main()
