"""Batched per-sample gradient norms against one backward pass per sample, measured side by side.

    python bench/gradnorm.py                       # 256 samples of the CPU quickstart policy
    python bench/gradnorm.py --samples 512 --param-slice lm_head

Samples are real completions of the quickstart policy (models/arith-sft) on the built-in task. Both
methods run in this process, alternating, ``--repeats`` times; the ratio of the medians is printed
with the largest relative difference between the two results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--param-slice", default="embedding", choices=["embedding", "lm_head"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--policy", default=str(ROOT / "models" / "arith-sft"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from gvmlit.allocation.gradnorm import grad_norm_one_at_a_time, grad_norms_of_rollouts
    from gvmlit.collate import collate_rollouts
    from gvmlit.data import ArithmeticTask
    from gvmlit.records import Rollout
    from gvmlit.policy import PretrainedPolicy
    from gvmlit.sampling import HFSampler

    torch.manual_seed(0)
    model, tokenizer = PretrainedPolicy(args.policy).load()
    records = ArithmeticTask(num_train=args.samples, num_val=0).records("train")
    prompts = [tokenizer(r.problem + "=")["input_ids"] for r in records]
    completions = HFSampler(max_new_tokens=64, progress=False).generate(model, tokenizer, prompts, [1] * len(prompts))
    rollouts = [Rollout(p, c[0].token_ids, 1.0, 1.0, i) for i, (p, c) in enumerate(zip(prompts, completions))]
    pad = tokenizer.pad_token_id

    param = (model.get_input_embeddings() if args.param_slice == "embedding" else model.get_output_embeddings()).weight

    def reference_code_style(rollout):
        """What the reference code does: full loss.backward() of every parameter, read θs's .grad."""
        model.zero_grad(set_to_none=True)
        batch = collate_rollouts([rollout], pad)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
        (-(lp * batch["response_mask"]).sum()).backward()
        return float(param.grad.norm())

    times = {"batched": [], "loop": [], "loop_full_backward": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        batched = grad_norms_of_rollouts(model, rollouts, pad, args.param_slice, args.batch_size)
        times["batched"].append(time.perf_counter() - start)
        start = time.perf_counter()
        looped = np.array([grad_norm_one_at_a_time(model, r, pad, args.param_slice) for r in rollouts])
        times["loop"].append(time.perf_counter() - start)
        start = time.perf_counter()
        full = np.array([reference_code_style(r) for r in rollouts])
        times["loop_full_backward"].append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    rel = float(np.max(np.abs(batched - looped) / np.maximum(np.abs(looped), 1e-12)))
    rel_full = float(np.max(np.abs(batched - full) / np.maximum(np.abs(full), 1e-12)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"samples {len(rollouts)}, θs = {args.param_slice}, threads {torch.get_num_threads()}, repeats {args.repeats}")
    print(f"batched ({args.batch_size} per pass):                    {med['batched']:.3f} s")
    print(f"one pass per sample, grad of θs only (autograd.grad): {med['loop']:.3f} s  "
          f"speedup {med['loop'] / med['batched']:.1f}x  max rel diff {rel:.1e}")
    print(f"one pass per sample, full loss.backward() (ref code): {med['loop_full_backward']:.3f} s  "
          f"speedup {med['loop_full_backward'] / med['batched']:.1f}x  max rel diff {rel_full:.1e}")


if __name__ == "__main__":
    main()
