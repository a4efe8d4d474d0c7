"""GVM's estimation cost (pilot sampling + gradient norms) as a share of an epoch's wall time.

    python bench/estimation_cost.py                         # runs recipes/cpu/raft_gvm.yaml for 5 epochs
    python bench/estimation_cost.py --logdir runs/ablate/raft_gvm   # reads finished runs instead

Both numbers come from the same run's TensorBoard logs: ``time/estimate_seconds`` (stage 1: pilot
sampling, verification and batched gradient norms, plus GVM++'s post-rollout updates) and
``time/epoch_seconds`` (rollout, training and validation of the epoch). The run uses one torch thread.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shares(logdir: Path) -> list[tuple[str, float, float]]:
    from gvmlit.ablation import read_scalars

    rows = []
    for events in sorted({p.parent for p in logdir.rglob("events.out.tfevents.*")}):
        scalars = read_scalars(events)
        if "time/estimate_seconds" not in scalars or "time/epoch_seconds" not in scalars:
            continue
        estimate = sum(v for _, v in scalars["time/estimate_seconds"])
        epoch = sum(v for _, v in scalars["time/epoch_seconds"])
        rows.append((str(events.relative_to(logdir)), estimate, epoch))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", help="summarise existing runs under this directory")
    parser.add_argument("--recipe", default="recipes/cpu/raft_gvm.yaml", help="any recipe whose allocator estimates")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    logdir = Path(args.logdir) if args.logdir else Path(tempfile.mkdtemp(prefix="gvmlit-cost-"))
    if not args.logdir:
        subprocess.run(
            [sys.executable, "-m", "gvmlit", "fit", "--config", args.recipe, f"--trainer.max_epochs={args.epochs}",
             f"--trainer.logger.init_args.save_dir={logdir}", "--trainer.enable_checkpointing=false",
             "--trainer.enable_progress_bar=false", "--model.init_args.sampler.init_args.progress=false",
             "--model.init_args.verifier.init_args.progress=false"],
            cwd=ROOT, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    rows = shares(logdir)
    for name, estimate, epoch in rows:
        print(f"{name}: estimation {estimate:.1f} s of {epoch:.1f} s of epochs = {estimate / epoch:.1%}")
    if rows:
        total_e, total = sum(r[1] for r in rows), sum(r[2] for r in rows)
        print(f"overall: estimation is {total_e / total:.1%} of epoch wall time ({len(rows)} runs)")


if __name__ == "__main__":
    main()
