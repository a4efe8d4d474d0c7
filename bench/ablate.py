"""The quick allocator comparison: allocators × algorithms × regimes × seeds on the built-in task, through
``gvmlit ablate`` (budgets in epochs, samples-to-level tables). The pre-registered study — budgets in
generated samples, one JSON file per run, paired ΔAUC intervals — is ``bench/study.py``
(docs/study/PROTOCOL.md).

    python bench/ablate.py --study                        # everything (budget: ≤ 90 min on 2 idle cores)
    python bench/ablate.py --study --regimes math_like --algorithms grpo --seeds 0
    python bench/ablate.py --summarize                    # tables and plots from the finished runs only
    python bench/ablate.py --study --docs                 # also copy the plots and tables into docs/

Each run is ``gvmlit ablate``'s: ``gvmlit fit`` on a CPU recipe with one allocator swapped in and the
regime's overrides, one torch thread, two runs at a time; a finished run is never run again, so the
study resumes where it stopped. For your own task use ``gvmlit ablate`` directly (docs/extending.md).

Regimes (every one evaluates π0 and then every second epoch on the first 64 of the task's held-out
problems, mean of 4 samples each; the table gives samples to reach fixed levels and the uniform arm's
final value):

- ``fresh`` — the CPU recipes as they are: 64 prompts a step from a pool of 2 000, so no prompt is seen
  twice in a run; any per-prompt memory is useless and estimation must come from pilots.
- ``noise_bound`` — 16 prompts a step, 4 passes of mini-batches of 16 over each rollout batch, from a
  pool of 64: each prompt is revisited every 4 epochs; gradients are noisy.
- ``math_like`` — a pool of 192 prompts in which a third are out of reach (3-digit sums the warm start
  never solves) and easy sums are solved more and more often: ≥ 40 % of uniform groups carry no
  gradient at the start, as in math RL; each prompt is revisited every 3 epochs.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]

REGIMES = {
    "fresh": {
        "epochs": 8,
        "levels": [0.45, 0.5],
        "overrides": [],
        "revisit": "never (64 new prompts a step from 2 000)",
    },
    "noise_bound": {
        "epochs": 12,
        "levels": [0.40, 0.42],
        "overrides": [
            "--data.init_args.prompts_per_epoch=16", "--data.init_args.batch_size=16", "--data.init_args.update_epochs=4",
            "--data.init_args.source.init_args.num_train=64",
        ],
        "revisit": "every 4 epochs (16 a step from 64)",
    },
    "math_like": {
        "epochs": 10,
        "levels": [0.36, 0.39],
        "overrides": [
            "--data.init_args.source.init_args.num_train=192", "--data.init_args.source.init_args.levels=[[2,1],[3,1],[2,2],[3,2],[3,3],[4,3]]",
        ],
        "revisit": "every 3 epochs (64 a step from 192)",
    },
}
ALGORITHMS = {"raftpp": "recipes/cpu/raftpp_uniform.yaml", "grpo": "recipes/cpu/grpo_uniform.yaml"}
ALLOCATORS = {
    "uniform": "gvmlit.allocation.UniformAllocator",
    "gvm": "configs/allocator/gvm.yaml",
    "gvmpp": "configs/allocator/gvmpp.yaml",
    "knapsack": "configs/allocator/knapsack.yaml",
    "greso": "configs/allocator/greso.yaml",
    "zero_variance_filter": "configs/allocator/zero_variance_filter.yaml",
    "pilot_commit": "configs/allocator/pilot_commit.yaml",
    "dapo": "--model.init_args.groups.dynamic_sampling=true",  # GRPO only: uniform allocation, zero-variance filter, refills
}
COMMON = ["--data.init_args.val_size=64", "--model.init_args.evaluation.samples=4", "--trainer.check_val_every_n_epoch=2", "--model.init_args.sampler.init_args.progress=false",
          "--model.init_args.verifier.init_args.progress=false"]  # fmt: skip
METRIC = "val/mean@4"


def arms_of(algorithm: str, allocators: list[str]) -> list[str]:
    return [f"{name}={ALLOCATORS[name]}" for name in allocators if name != "dapo" or algorithm == "grpo"]


BEHAVIOUR = {  # per-epoch metrics averaged over a run: what each allocator did
    "rollout/informative_sample_share": "informative share",
    "rollout/zero_variance_groups": "zero-variance groups",
    "allocation/prompts_starved": "prompts not sampled",
    "train/grad_noise_to_signal": "grad noise/signal",
    "time/estimate_seconds": "estimation s/epoch",
    "time/epoch_seconds": "epoch s",
}


def behaviour(out: Path, results: list[dict]) -> str:
    """Per arm, the mean over its runs' epochs of what it did (read back from the runs' TensorBoard files)."""
    import numpy as np

    from gvmlit.ablation import read_scalars

    lines = ["| arm | samples generated | " + " | ".join(BEHAVIOUR.values()) + " |", "|---|---|" + "---|" * len(BEHAVIOUR)]
    for arm in dict.fromkeys(r["arm"] for r in results):
        runs = [read_scalars(out / arm / f"seed{r['seed']}") for r in results if r["arm"] == arm]
        generated = np.mean([run["budget/samples_generated"][-1][1] for run in runs])
        cells = []
        for tag in BEHAVIOUR:
            values = [np.mean([v for _, v in run[tag]]) for run in runs if tag in run]
            cells.append(f"{np.mean(values):.2f}" if values else "–")
        lines.append(f"| {arm} | {generated:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_study(args) -> dict[str, list[dict]]:
    from gvmlit.ablation import ablate

    results = {}
    for regime in args.regimes:
        for algorithm in args.algorithms:
            spec = REGIMES[regime]
            options = SimpleNamespace(
                config=[ALGORITHMS[algorithm]], arm=arms_of(algorithm, args.allocators), key="--model.init_args.allocator",
                seeds=args.seeds, epochs=spec["epochs"], metric=METRIC, levels=spec["levels"], jobs=args.jobs, threads=1,
                title=f"{algorithm}, {regime} (revisits: {spec['revisit']})", out=str(Path(args.out) / regime / algorithm),
                run=not args.summarize,  # as gvmlit ablate's --summarize
            )  # fmt: skip
            results[f"{regime}/{algorithm}"] = ablate(options, [*COMMON, *spec["overrides"]])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", action="store_true", help="run the runs that have not finished, then summarise")
    parser.add_argument("--summarize", action="store_true", help="only summarise the finished runs")
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    parser.add_argument("--allocators", nargs="+", default=list(ALLOCATORS), choices=list(ALLOCATORS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    parser.add_argument("--out", default="runs/study")
    parser.add_argument("--docs", action="store_true", help="copy the tables and plots into docs/study/")
    args = parser.parse_args()
    if not (args.study or args.summarize):
        parser.error("say --study (run and summarise) or --summarize")
    results = run_study(args)
    study = Path(args.out) / "study.md"
    sections = []
    for key, runs in results.items():
        table = (Path(args.out) / key / "ablation.md").read_text()
        sections.append(table + "\nWhat each arm did (means over epochs and seeds):\n\n" + behaviour(Path(args.out) / key, runs))
    study.write_text("\n".join(sections))
    print(f"wrote {study}")
    if args.docs:
        target = ROOT / "docs" / "study"
        target.mkdir(parents=True, exist_ok=True)
        for key in results:
            shutil.copy(Path(args.out) / key / "ablation.png", target / f"{key.replace('/', '_')}.png")
        shutil.copy(study, target / "study.md")
        (target / "results.json").write_text(json.dumps(results, indent=0))


if __name__ == "__main__":
    import os

    os.chdir(ROOT)  # the recipes and configs are named relative to the repository
    main()
