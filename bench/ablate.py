"""Allocator ablation at equal budget: held-out accuracy against generated samples, several seeds.

    python bench/ablate.py                                   # RAFT, RAFT++, GRPO × uniform, GVM, GVM++ × 3 seeds
    python bench/ablate.py --algorithms raftpp --seeds 0 --epochs 5 --out runs/ablate-smoke

Every run is ``gvmlit fit --config recipes/cpu/{algorithm}_{allocator}.yaml`` with the seed and the
prompt-pool size overridden, so the ablation swaps exactly one config key (the allocator) between
arms. The x-axis counts every generated training-side sample, pilots included
(``budget/samples_generated``). Outputs in ``--out``: ``ablation.png`` (accuracy against samples,
mean over seeds with min–max band), ``ablation.md`` (samples needed to first reach each accuracy
level, per allocator, with the ratio to uniform) and ``results.json`` (all curves).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def read_curve(logdir: Path, metric: str) -> list[tuple[int, float]]:
    """``metric`` against generated samples, from the run's TensorBoard events."""
    from helpers import read_scalars

    return read_scalars(logdir)[f"{metric}_vs_samples"]


def run(algorithm: str, allocator: str, seed: int, args) -> dict:
    logdir = Path(args.out) / f"{algorithm}_{allocator}" / f"seed{seed}"
    command = [
        sys.executable, "-m", "gvmlit", "fit", "--config", f"recipes/cpu/{algorithm}_{allocator}.yaml",
        f"--seed_everything={seed}", f"--data.init_args.seed={seed}", f"--trainer.max_epochs={args.epochs}",
        f"--data.init_args.source.init_args.num_train={args.num_train}",
        f"--trainer.logger.init_args.save_dir={logdir}", "--trainer.logger.init_args.name=run",
        f"--trainer.default_root_dir={logdir}", "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--data.init_args.sampler.init_args.progress=false", "--data.init_args.verifier.init_args.progress=false",
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{algorithm}/{allocator}/seed {seed} failed:\n{proc.stderr[-3000:]}")
    curve = read_curve(logdir, args.metric)
    print(f"{algorithm:7s} {allocator:8s} seed {seed}: {args.metric} {curve[0][1]:.3f} → {curve[-1][1]:.3f} "
          f"after {curve[-1][0]} samples ({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    return {"algorithm": algorithm, "allocator": allocator, "seed": seed, "curve": curve,
            "seconds": time.perf_counter() - started}  # fmt: skip


def samples_to_reach(curve: list[tuple[int, float]], level: float) -> float:
    """Generated samples at the first evaluation whose accuracy reaches ``level`` (inf if never)."""
    return next((float(step) for step, value in curve if value >= level), float("inf"))


def summarize(results: list[dict], levels: list[float], metric: str) -> str:
    lines = [f"Samples generated (pilots included) to first reach held-out {metric}; mean ± std over seeds "
             "(reached / seeds), and the ratio to uniform's mean (< 1 = fewer samples than uniform).", ""]  # fmt: skip
    for algorithm in dict.fromkeys(r["algorithm"] for r in results):
        lines += [f"**{algorithm}**", "", "| allocator | " + " | ".join(f"≥ {lv:.2f}" for lv in levels) + " | final (mean) |",
                  "|---|" + "---|" * (len(levels) + 1)]  # fmt: skip
        arms = {a: [r for r in results if r["algorithm"] == algorithm and r["allocator"] == a]
                for a in dict.fromkeys(r["allocator"] for r in results if r["algorithm"] == algorithm)}  # fmt: skip
        uniform_means = {}
        for allocator, runs in arms.items():
            cells = []
            for level in levels:
                reached = [samples_to_reach(r["curve"], level) for r in runs]
                finite = [x for x in reached if np.isfinite(x)]
                if not finite:
                    cells.append(f"never (0/{len(runs)})")
                    continue
                mean = float(np.mean(finite))
                if allocator == "uniform":
                    uniform_means[level] = mean
                ratio = f", ×{mean / uniform_means[level]:.2f}" if allocator != "uniform" and level in uniform_means else ""
                cells.append(f"{mean:.0f} ± {np.std(finite):.0f} ({len(finite)}/{len(runs)}{ratio})")
            final = np.mean([r["curve"][-1][1] for r in runs])
            lines.append(f"| {allocator} | " + " | ".join(cells) + f" | {final:.3f} |")
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict], path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algorithms = list(dict.fromkeys(r["algorithm"] for r in results))
    fig, axes = plt.subplots(1, len(algorithms), figsize=(5 * len(algorithms), 3.8), squeeze=False, sharey=True)
    for ax, algorithm in zip(axes[0], algorithms):
        for allocator in dict.fromkeys(r["allocator"] for r in results if r["algorithm"] == algorithm):
            runs = [r for r in results if r["algorithm"] == algorithm and r["allocator"] == allocator]
            grid = np.linspace(0, min(r["curve"][-1][0] for r in runs), 60)
            values = np.array([np.interp(grid, *zip(*r["curve"])) for r in runs])
            line = ax.plot(grid, values.mean(0), label=f"{allocator} ({len(runs)} seeds)")[0]
            ax.fill_between(grid, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
        ax.set_title(algorithm)
        ax.set_xlabel("generated samples (pilots included)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"held-out {metric}")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", default=["raft", "raftpp", "grpo"], help="recipe prefixes")
    parser.add_argument("--allocators", nargs="+", default=["uniform", "gvm", "gvmpp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20, help="EM iterations per run")
    parser.add_argument("--num-train", type=int, default=256, help="training prompts (64 a step: each seen every 4 steps)")
    parser.add_argument("--metric", default="val/mean@4", help="held-out metric (logged against samples)")
    parser.add_argument("--levels", nargs="+", type=float, default=[0.45, 0.5, 0.55, 0.6])
    parser.add_argument("--out", default="runs/ablate")
    parser.add_argument("--from-logs", action="store_true", help="only summarise the finished runs already in --out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_logs:
        results = []
        for al in args.algorithms:
            for alloc in args.allocators:
                for s in args.seeds:
                    logdir = out / f"{al}_{alloc}" / f"seed{s}"
                    if list(logdir.rglob("events.out.tfevents.*")):
                        curve = read_curve(logdir, args.metric)
                        if len(curve) == args.epochs + 1:  # finished runs only
                            results.append({"algorithm": al, "allocator": alloc, "seed": s, "curve": curve})
    else:
        results = [run(al, alloc, s, args) for al in args.algorithms for alloc in args.allocators for s in args.seeds]
    (out / "results.json").write_text(json.dumps({"args": vars(args), "runs": results}, indent=1))
    plot(results, out / "ablation.png", args.metric)
    table = summarize(results, args.levels, args.metric)
    (out / "ablation.md").write_text(table + "\n")
    print(table)
    print(f"wrote {out / 'ablation.png'}, {out / 'ablation.md'}, {out / 'results.json'}")


if __name__ == "__main__":
    main()
