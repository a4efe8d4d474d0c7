"""LoRA against full fine-tuning: peak memory and training-step time, side by side in one run.

    python bench/lora.py                          # a 134 M-parameter Llama built from a config, 3 pairs
    python bench/lora.py --pairs 5 --hidden 512   # smaller / longer

Each measurement runs in a fresh process (so that its peak resident memory is its own), full fine-tuning
and LoRA alternating, ``--pairs`` times: build the model from a config (random weights: the cost of a
step does not depend on them), AdamW over the parameters that train, one warm-up step, then ``--steps``
timed steps of forward, backward and optimiser step on a batch of ``--batch`` sequences of ``--tokens``
tokens. Printed: each process's peak RSS and median step time, and the LoRA / full ratios (median over
pairs). The LoRA settings are gvmlit's (gvmlit.lora: rank 16, alpha 32, every linear layer of the
decoder).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def measure(mode: str, args) -> dict:
    """One process: build, warm up, time ``args.steps`` training steps; peak memory of this process."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from gvmlit.lora import LoraSettings, add_adapters

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=int(args.hidden * 8 / 3) // 64 * 64,
        num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64, num_key_value_heads=args.hidden // 64,
        max_position_embeddings=args.tokens, tie_word_embeddings=False,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    total = sum(p.numel() for p in model.parameters())
    if mode == "lora":
        model = add_adapters(model, LoraSettings(rank=16, alpha=32.0))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    batch = torch.randint(0, args.vocab, (args.batch, args.tokens))
    times = []
    for step in range(args.steps + 1):
        started = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step allocates the optimiser state: warm-up
            times.append(time.perf_counter() - started)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {
        "mode": mode, "parameters": total, "trainable": sum(p.numel() for p in trainable),
        "step_s": statistics.median(times), "peak_rss_mib": peak_mib, "threads": torch.get_num_threads(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--one", choices=["full", "lora"], help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args)))
        return
    forwarded = [a for a in sys.argv[1:]]
    rows = []
    for pair in range(args.pairs):
        for mode in ("full", "lora") if pair % 2 == 0 else ("lora", "full"):  # alternate who goes first
            out = subprocess.run([sys.executable, __file__, *forwarded, "--one", mode], capture_output=True, text=True, env=os.environ)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            row = rows[-1]
            print(f"pair {pair} {mode:4s}: step {row['step_s']:.2f} s, peak RSS {row['peak_rss_mib']:.0f} MiB, "
                  f"trainable {row['trainable'] / 1e6:.2f} M of {row['parameters'] / 1e6:.1f} M", flush=True)  # fmt: skip
    full = [r for r in rows if r["mode"] == "full"]
    lora = [r for r in rows if r["mode"] == "lora"]
    time_ratio = statistics.median(b["step_s"] / a["step_s"] for a, b in zip(full, lora))
    memory_ratio = statistics.median(b["peak_rss_mib"] / a["peak_rss_mib"] for a, b in zip(full, lora))
    print(
        f"{full[0]['parameters'] / 1e6:.1f} M parameters, LoRA trains {lora[0]['trainable'] / 1e6:.2f} M; batch {args.batch} × "
        f"{args.tokens} tokens, {full[0]['threads']} torch threads\n"
        f"LoRA / full: step time ×{time_ratio:.2f}, peak memory ×{memory_ratio:.2f} (medians over {args.pairs} pairs)"
    )


if __name__ == "__main__":
    main()
