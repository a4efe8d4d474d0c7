"""One GRPO iteration (sample, verify, update) in gvmlit against TRL's GRPOTrainer, same work, one run.

    pip install trl            # benchmark only; not a gvmlit dependency
    python bench/vs_trl.py                      # 64 prompts × 8 samples, ≤ 64 new tokens, 8 updates of 64
    python bench/vs_trl.py --prompts 32 --iterations 3

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

    from gvmlit.algorithms import GRPO
    from gvmlit.data import ArithmeticTask, RolloutDataModule
    from gvmlit.policy import PretrainedPolicy
    from gvmlit.sampling import HFSampler
    from gvmlit.verifiers import ArithmeticVerifier

    class Timer(Callback):
        def __init__(self):
            self.rows = []

        def on_train_epoch_end(self, trainer, pl_module):
            result = pl_module.last_rollouts
            total = time.perf_counter() - result.started
            rollout = result.metrics["time/rollout_seconds"]
            self.rows.append({"total": total, "rollout (sample+verify+π_old)": rollout, "update": total - rollout})

    torch.manual_seed(0)
    data = RolloutDataModule(
        source=ArithmeticTask(num_train=4000, num_val=0, seed=0),
        prompts_per_epoch=args.prompts, batch_size=args.minibatch, prompt_template="{problem}=",
    )  # fmt: skip
    module = GRPO(
        policy=PretrainedPolicy(POLICY), lr=1e-5, kl_coef=0.0, clip_low=0.2, clip_high=0.2, singleton_groups="zero",
        sampler=HFSampler(max_new_tokens=args.max_new_tokens, batch_size=512, progress=False),
        verifier=ArithmeticVerifier(progress=False), samples_per_prompt=args.samples,
    )  # fmt: skip
    timer = Timer()
    trainer = Trainer(
        max_epochs=args.iterations + 1, reload_dataloaders_every_n_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        callbacks=[timer],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--minibatch", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
