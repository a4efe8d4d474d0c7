"""gvmlit against TRL's GRPOTrainer: the loss variants against TRL's own loss code, and one GRPO iteration
(sample, verify, update), same work, one run.

    pip install trl            # benchmark only; not a gvmlit dependency
    python bench/vs_trl.py                      # losses, then 64 prompts × 8 samples, ≤ 64 new tokens, 8 updates of 64
    python bench/vs_trl.py --losses-only        # only the loss comparison
    python bench/vs_trl.py --prompts 32 --iterations 3

Losses: for each of TRL's loss types gvmlit offers (grpo, bnpo, dapo, dr_grpo) and both importance-sampling
levels (token; sequence = GSPO), the same model, tokens, π_old and advantages go through TRL's
``GRPOTrainer._compute_loss`` and through gvmlit's ``clipped_surrogate`` + ``aggregate``; the largest
difference is printed and must stay below 1e-6.

Both sides use the same tiny policy (models/arith-sft, 660 K parameters), the same prompts of the
built-in task, the same reward (ArithmeticVerifier), temperature 1, no KL, one pass of mini-batches of
64 sequences over each batch of 512 samples. Each side runs ``--iterations`` + 1 iterations; the first
(warm-up) is dropped and the median of the rest is reported, with where the time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
POLICY = str(ROOT / "models" / "arith-sft")


def gvmlit_iterations(args) -> list[dict]:
    from lightning.pytorch import Callback, Trainer

    from gvmlit.algorithms import GRPO, GroupSettings, LossSettings, Optimization, RolloutSettings
    from gvmlit.data import ArithmeticTask, RolloutDataModule
    from gvmlit.policy import PretrainedPolicy
    from gvmlit.sampling import HFSampler
    from gvmlit.verifiers import ArithmeticVerifier

    class Timer(Callback):
        def __init__(self):
            self.rows = []

        def on_train_epoch_end(self, trainer, pl_module):
            result = pl_module.epoch_result
            total = time.perf_counter() - result.started
            rollout = result.metrics["time/rollout_seconds"]
            self.rows.append({"total": total, "rollout (sample+verify+π_old)": rollout, "update": total - rollout})

    torch.manual_seed(0)
    data = RolloutDataModule(
        source=ArithmeticTask(num_train=4000, num_val=0, seed=0),
        prompts_per_epoch=args.prompts, batch_size=args.minibatch, prompt_template="{problem}=",
    )  # fmt: skip
    module = GRPO(
        policy=PretrainedPolicy(POLICY), optim=Optimization(lr=1e-5), loss=LossSettings(kl_coef=0.0, clip_low=0.2, clip_high=0.2),
        groups=GroupSettings(singleton_groups="zero"), sampler=HFSampler(max_new_tokens=args.max_new_tokens, batch_size=512, progress=False),
        verifier=ArithmeticVerifier(progress=False), rollout=RolloutSettings(samples_per_prompt=args.samples),
    )  # fmt: skip
    timer = Timer()
    trainer = Trainer(
        max_epochs=args.iterations + 1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    return timer.rows[1:]


def trl_iterations(args) -> list[dict]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from gvmlit.data import ArithmeticTask
    from gvmlit.verifiers import ArithmeticVerifier

    verifier = ArithmeticVerifier(progress=False)
    spent = {"generate": 0.0, "reward": 0.0}

    def reward(prompts, completions, answer, **kwargs):
        start = time.perf_counter()
        from gvmlit.records import PromptRecord

        records = [PromptRecord(str(i), "", a) for i, a in enumerate(answer)]
        out = [v.reward for v in verifier.score(completions, records)]
        spent["reward"] += time.perf_counter() - start
        return out

    records = ArithmeticTask(num_train=4000, num_val=0, seed=0).records("train")
    dataset = Dataset.from_dict({"prompt": [r.problem + "=" for r in records], "answer": [r.answer for r in records]})
    tokenizer = AutoTokenizer.from_pretrained(POLICY)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(POLICY)
    original_generate = model.generate

    def timed_generate(*a, **k):
        start = time.perf_counter()
        out = original_generate(*a, **k)
        spent["generate"] += time.perf_counter() - start
        return out

    model.generate = timed_generate
    steps = (args.prompts * args.samples) // args.minibatch
    config = GRPOConfig(
        output_dir=str(Path(os.environ.get("TMPDIR", "/tmp")) / "gvmlit-vs-trl"), use_cpu=True, report_to=[],
        per_device_train_batch_size=args.minibatch, num_generations=args.samples, steps_per_generation=steps,
        num_iterations=1, max_completion_length=args.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
        beta=0.0, epsilon=0.2, learning_rate=1e-5, max_steps=steps * (args.iterations + 1), logging_steps=10_000,
        save_strategy="no", disable_dropout=True, bf16=False, seed=0, dataloader_num_workers=0,
    )  # fmt: skip

    class Timer(TrainerCallback):
        def __init__(self):
            self.marks, self.rows = [], []

        def on_step_begin(self, args_, state, control, **kwargs):
            if state.global_step % steps == 0:
                self.marks.append((time.perf_counter(), dict(spent)))

        def on_train_end(self, args_, state, control, **kwargs):
            self.marks.append((time.perf_counter(), dict(spent)))

    timer = Timer()
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[timer])  # fmt: skip
    trainer.train()
    rows = []
    for (t0, s0), (t1, s1) in zip(timer.marks, timer.marks[1:]):
        gen, rew = s1["generate"] - s0["generate"], s1["reward"] - s0["reward"]
        rows.append({"total": t1 - t0, "generate": gen, "reward": rew, "rest (scoring, update)": t1 - t0 - gen - rew})
    return rows[1:]


def compare_losses() -> float:
    """TRL's loss code against gvmlit's for every shared loss type and both ratio levels; returns the
    largest absolute difference."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from gvmlit.forward import batch_logprobs
    from gvmlit.losses import aggregate, clipped_surrogate

    tokenizer = AutoTokenizer.from_pretrained(POLICY)
    model = AutoModelForCausalLM.from_pretrained(POLICY).eval()
    config = GRPOConfig(
        output_dir=str(Path(os.environ.get("TMPDIR", "/tmp")) / "gvmlit-vs-trl-loss"), use_cpu=True, report_to=[],
        per_device_train_batch_size=4, num_generations=4, max_completion_length=12, beta=0.0, epsilon=0.2,
        epsilon_high=0.28, temperature=1.0, bf16=False,
    )  # fmt: skip
    trainer = GRPOTrainer(model=model, reward_funcs=[lambda completions, **k: [0.0] * len(completions)], args=config,
                          train_dataset=Dataset.from_dict({"prompt": ["1+1="] * 4}), processing_class=tokenizer)  # fmt: skip
    trainer.model.eval()  # TRL's eval mode: no gradient-accumulation scaling in its normalisers
    generator = torch.Generator().manual_seed(0)
    batch, prompt_len, completion_len = 6, 5, 12
    prompt_ids = torch.randint(4, 20, (batch, prompt_len), generator=generator)
    completion_ids = torch.randint(4, 20, (batch, completion_len), generator=generator)
    lengths = torch.tensor([12, 3, 7, 12, 1, 9])
    completion_mask = (torch.arange(completion_len)[None] < lengths[:, None]).long()
    input_ids = torch.cat([prompt_ids, completion_ids], 1)
    ours = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    with torch.no_grad():
        logprobs, _ = batch_logprobs(model, ours, 1.0)
    logprobs = logprobs[:, prompt_len - 1 :]  # the completion's tokens
    old = logprobs + torch.randn(logprobs.shape, generator=generator) * 0.3  # a stale π_old: clipping bites
    advantages = torch.randn(batch, generator=generator)
    largest = 0.0
    for level, (low, high) in (("token", (0.2, 0.28)), ("sequence", (3e-4, 4e-4))):
        for loss_type in ("grpo", "bnpo", "dapo", "dr_grpo"):
            trainer.loss_type, trainer.importance_sampling_level = loss_type, level
            trainer.epsilon_low, trainer.epsilon_high = low, high
            inputs = {
                "prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids), "completion_ids": completion_ids,
                "completion_mask": completion_mask, "advantages": advantages, "old_per_token_logps": old,
                "num_items_in_batch": completion_mask.sum(),
            }  # fmt: skip
            with torch.no_grad():
                theirs = float(trainer._compute_loss(trainer.model, inputs))
            per_token, _, _ = clipped_surrogate(logprobs, old, advantages, low, high, level=level, mask=completion_mask)
            mine = float(aggregate(per_token, completion_mask, loss_type, max_tokens=completion_len))
            largest = max(largest, abs(theirs - mine))
            print(f"loss {loss_type:8s} ratio {level:8s}: TRL {theirs:+.8f}  gvmlit {mine:+.8f}  |diff| {abs(theirs - mine):.1e}")
    print(f"largest |TRL − gvmlit| over the loss variants: {largest:.1e}")
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--minibatch", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--losses-only", action="store_true", help="only compare the loss variants with TRL's loss code")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if compare_losses() > 1e-6:
        raise SystemExit("gvmlit's losses differ from TRL's (see above)")
    if args.losses_only:
        return
    results = {"gvmlit": gvmlit_iterations(args), "TRL GRPOTrainer": trl_iterations(args)}
    print(f"one GRPO iteration: {args.prompts} prompts × {args.samples} samples, ≤ {args.max_new_tokens} new tokens, "
          f"{args.prompts * args.samples // args.minibatch} updates of {args.minibatch}; threads {torch.get_num_threads()}")  # fmt: skip
    medians = {}
    for name, rows in results.items():
        parts = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        medians[name] = parts["total"]
        print(f"{name:16s} " + "  ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
    print(f"ratio TRL / gvmlit: {medians['TRL GRPOTrainer'] / medians['gvmlit']:.2f}x (> 1: gvmlit is faster)")


if __name__ == "__main__":
    main()
