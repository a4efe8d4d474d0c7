"""``gvmlit ablate``: the same recipe with one config key swapped per arm, several seeds, one table and plot.

    gvmlit ablate --config recipes/cpu/grpo_uniform.yaml \\
        --arm uniform=gvmlit.allocation.UniformAllocator --arm gvmpp=configs/allocator/gvmpp.yaml \\
        --seeds 0 1 2 --epochs 10 --out runs/ablate/grpo [-- any other override, e.g. --data.init_args.batch_size=16]

Every run is ``gvmlit fit --config RECIPE… --model.init_args.allocator=ARM --seed_everything=SEED``
(``--key`` swaps another key than the allocator); the seed is the run seed, so it moves the training
pool of a generated task, the prompt order, sampling and the allocator's randomness. Any recipe works,
the user's own task included. A finished run leaves ``result.json`` in its directory and is not run
again, so an interrupted ablation resumes where it stopped; arms already in ``--out`` from earlier
calls join the tables (adding an arm merges it in). Held-out accuracy is read from the runs'
TensorBoard files against the generated training samples (pilots included) and against wall time,
afresh on every call, so ``--summarize --metric M`` recomputes everything for M. Outputs in ``--out``:
``ablation.md`` (samples and seconds to first reach each accuracy level, the metric and greedy accuracy
at equal samples — the spend every run reached —, final values, spread over seeds, ratios to the first
arm), ``ablation.png`` and ``results.json``. For a pre-registered study with paired intervals see
``bench/study.py`` (docs/study/PROTOCOL.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from gvmlit.errors import GvmlitError


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars of the TensorBoard event files under ``logdir``: tag → [(step, value)] by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, dict[int, float]] = {}
    for events in sorted({p.parent for p in Path(logdir).rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
    return {tag: sorted(values.items()) for tag, values in scalars.items()}


GREEDY = "val/accuracy"


def run_curves(scalars: dict, metric: str) -> dict:
    """The run's held-out ``metric`` (and greedy accuracy) against generated samples, and ``metric``
    against training seconds."""
    by_samples = scalars.get(f"{metric}_vs_samples", [])
    epochs = scalars.get("time/epoch_seconds", [])  # at the global step each epoch ended
    # an evaluation at global step s comes after every epoch that ended at a step ≤ s (not after the
    # i-th epoch: with check_val_every_n_epoch > 1 epochs and evaluations do not pair one to one)
    by_seconds = [(float(sum(t for end, t in epochs if end <= step)), v) for step, v in scalars.get(metric, [])]
    return {"samples": by_samples, "seconds": by_seconds, "greedy": scalars.get(f"{GREEDY}_vs_samples", [])}


def load_result(directory: Path, metric: str) -> dict | None:
    """A finished run's ``result.json`` with its curves read afresh for ``metric`` from its TensorBoard
    files (so a summary for another metric recomputes, never reuses a cached one); None if unfinished."""
    done = directory / "result.json"
    if not done.is_file():
        return None
    result = json.loads(done.read_text())
    scalars = read_scalars(directory)
    if scalars:
        if f"{metric}_vs_samples" not in scalars:
            logged = sorted(t[: -len("_vs_samples")] for t in scalars if t.startswith("val/") and t.endswith("_vs_samples"))
            raise GvmlitError(f"run {directory} logged no {metric!r} (--metric); it logged: {', '.join(logged) or 'no evaluation'}")
        result["curves"] = run_curves(scalars, metric)
    result["metric"] = metric
    return result


def run_one(arm: str, value: str, seed: int, args, overrides: list[str]) -> dict:
    """One arm × seed: the run's result, from ``result.json`` when it already finished."""
    directory = Path(args.out) / arm / f"seed{seed}"
    done = directory / "result.json"
    if done.is_file():
        return load_result(directory, args.metric)
    if not args.run:  # summarising only: an unfinished run is left out
        return None
    command = [sys.executable, "-m", "gvmlit", "fit"]
    for config in args.config:
        command += ["--config", config]
    swap = value.split() if value.startswith("--") else [f"{args.key}={value}"]  # an arm may be raw overrides
    command += [
        *swap, f"--seed_everything={seed}", f"--trainer.max_epochs={args.epochs}",
        "--trainer.logger.class_path=lightning.pytorch.loggers.TensorBoardLogger",
        f"--trainer.logger.init_args.save_dir={directory}", "--trainer.logger.init_args.name=run",
        f"--trainer.default_root_dir={directory}", "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    shutil.rmtree(directory, ignore_errors=True)  # an interrupted run's partial logs would mix with the rerun's
    directory.mkdir(parents=True)
    started = time.perf_counter()
    with (directory / "output.log").open("w") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = (directory / "output.log").read_text()[-2000:]
        raise GvmlitError(f"ablation run {arm} seed {seed} failed (exit {proc.returncode}); its log: {directory / 'output.log'}\n{tail}")
    scalars = read_scalars(directory)
    if f"{args.metric}_vs_samples" not in scalars:
        logged = sorted(t[: -len("_vs_samples")] for t in scalars if t.startswith("val/") and t.endswith("_vs_samples"))
        raise GvmlitError(f"ablation run {arm} seed {seed} logged no {args.metric!r} (--metric); it logged: {', '.join(logged) or 'no evaluation'}")
    result = {
        "arm": arm, "value": value, "seed": seed, "seconds": time.perf_counter() - started,
        "curves": run_curves(scalars, args.metric), "final": {tag: values[-1][1] for tag, values in scalars.items() if values},
    }  # fmt: skip
    done.write_text(json.dumps(result))
    print(f"{arm:10s} seed {seed}: {args.metric} {_fmt(result, 0)} → {_fmt(result, -1)} after "
          f"{result['curves']['samples'][-1][0] if result['curves']['samples'] else 0} samples ({result['seconds']:.0f} s)", flush=True)  # fmt: skip
    return result


def _fmt(result: dict, index: int) -> str:
    curve = result["curves"]["samples"]
    return f"{curve[index][1]:.3f}" if curve else "n/a"


def first_reaching(curve: list, level: float) -> float:
    """The x (samples or seconds) of the first evaluation after training started (π0's point at x = 0
    does not count) at or above ``level``; inf if never."""
    return next((float(x) for x, value in curve if x > 0 and value >= level), float("inf"))


def value_at(curve: list, samples: float) -> float:
    """The curve's value at ``samples`` generated samples (linear between evaluations); nan without a curve."""
    if not curve:
        return float("nan")
    xs, ys = zip(*sorted(curve))
    return float(np.interp(samples, xs, ys))


def summarize(results: list[dict], levels: list[float], metric: str, title: str = "") -> str:
    """Markdown tables: per arm, generated samples to first reach each level and to reach the first
    arm's final value (the reference, e.g. uniform's), mean ± std over the seeds that got there (how
    many did, ratio to the first arm), seconds to that value, and the final value; then ``metric`` and
    greedy accuracy at equal samples (the spend every run reached)."""
    arms = list(dict.fromkeys(r["arm"] for r in results))
    reference_final = float(np.mean([r["curves"]["samples"][-1][1] for r in results if r["arm"] == arms[0] and r["curves"]["samples"]]))
    targets = [*levels, reference_final]
    names = [f"≥ {lv:.2f}" for lv in levels] + [f"≥ {arms[0]}'s final {reference_final:.3f}"]
    header = "| arm | seeds | " + " | ".join(f"samples to {n}" for n in names) + f" | seconds to {arms[0]}'s final | final |"
    lines = ([title, ""] if title else []) + [header, "|---|---|" + "---|" * (len(targets) + 2)]
    reference: dict[int, float] = {}
    for arm in arms:
        runs = [r for r in results if r["arm"] == arm]
        cells = []
        for k, level in enumerate(targets):
            reached = [x for x in (first_reaching(r["curves"]["samples"], level) for r in runs) if np.isfinite(x)]
            if not reached:
                cells.append(f"never (0/{len(runs)})")
                continue
            mean = float(np.mean(reached))
            if arm == arms[0]:
                reference[k] = mean
            ratio = f", ×{mean / reference[k]:.2f}" if arm != arms[0] and reference.get(k) else ""
            cells.append(f"{mean:.0f} ± {np.std(reached):.0f} ({len(reached)}/{len(runs)}{ratio})")
        seconds = [x for x in (first_reaching(r["curves"]["seconds"], reference_final) for r in runs) if np.isfinite(x)]
        cells.append(f"{np.mean(seconds):.0f} ± {np.std(seconds):.0f} ({len(seconds)}/{len(runs)})" if seconds else f"never (0/{len(runs)})")
        finals = [r["curves"]["samples"][-1][1] for r in runs if r["curves"]["samples"]]
        cells.append(f"{np.mean(finals):.3f} ± {np.std(finals):.3f}" if finals else "n/a")
        lines.append(f"| {arm} | {len(runs)} | " + " | ".join(cells) + " |")
    common = min((r["curves"]["samples"][-1][0] for r in results if r["curves"]["samples"]), default=0)
    lines += ["", f"At equal samples ({common:.0f}, the spend every run reached):", "",
              f"| arm | {metric} | greedy accuracy | final spend (samples) |", "|---|---|---|---|"]  # fmt: skip
    for arm in arms:
        runs = [r for r in results if r["arm"] == arm]
        at = [value_at(r["curves"]["samples"], common) for r in runs]
        greedy = [v for v in (value_at(r["curves"].get("greedy", []), common) for r in runs) if np.isfinite(v)]
        spend = [r["curves"]["samples"][-1][0] for r in runs if r["curves"]["samples"]]
        lines.append(
            f"| {arm} | {np.mean(at):.3f} ± {np.std(at):.3f} | " + (f"{np.mean(greedy):.3f} ± {np.std(greedy):.3f}" if greedy else "n/a")
            + f" | {np.mean(spend):.0f} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path, metric: str, title: str = "") -> None:
    """:func:`figure`, written to ``path``."""
    from gvmlit.plots import save_figure

    save_figure(figure(results, metric, title), path)


def figure(results: list[dict], metric: str, title: str = ""):
    """Held-out ``metric`` against generated samples: mean over seeds, min–max band, one line per arm;
    titled by ``title`` or, without one, by the arms compared."""
    from gvmlit.plots import plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for arm in dict.fromkeys(r["arm"] for r in results):
        curves = [r["curves"]["samples"] for r in results if r["arm"] == arm and r["curves"]["samples"]]
        if not curves:
            continue
        grid = np.linspace(0, min(c[-1][0] for c in curves), 60)
        values = np.array([np.interp(grid, *zip(*c)) for c in curves])
        line = ax.plot(grid, values.mean(0), label=f"{arm} ({len(curves)} seeds)")[0]
        ax.fill_between(grid, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
    ax.set_xlabel("generated training samples (pilots included)")
    ax.set_ylabel(f"held-out {metric}")
    arms = list(dict.fromkeys(r["arm"] for r in results))
    ax.set_title(title or f"{' vs '.join(arms)}: {metric} per generated sample", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="arm (seeds); band: min–max", title_fontsize=8)
    fig.tight_layout()
    return fig


def ablate(args, overrides: list[str]) -> list[dict]:
    """Run (or reuse) every arm × seed, ``args.jobs`` at a time; write the table, plot and results."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = [arm.split("=", 1) for arm in args.arm]
    jobs = [(name, value, seed) for seed in args.seeds for name, value in arms]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = [r for r in pool.map(lambda job: run_one(*job, args, overrides), jobs) if r is not None]
    # arms (and seeds) finished in this folder by earlier calls join the tables: adding an arm merges it in
    named = {(r["arm"], r["seed"]) for r in results}
    for done in sorted(out.glob("*/seed*/result.json")):
        arm, seed = done.parent.parent.name, int(done.parent.name[len("seed") :])
        if (arm, seed) not in named:
            earlier = load_result(done.parent, args.metric)
            if earlier is not None:
                results.append(earlier)
    order = [a for a, _ in arms] + sorted({r["arm"] for r in results} - {a for a, _ in arms})
    results.sort(key=lambda r: (order.index(r["arm"]), r["seed"]))
    (out / "results.json").write_text(json.dumps({"args": vars(args), "overrides": overrides, "runs": results}, indent=1))
    table = summarize(results, args.levels, args.metric, args.title)
    (out / "ablation.md").write_text(table)
    plot(results, out / "ablation.png", args.metric, args.title)
    print(table)
    print(f"wrote {out / 'ablation.md'}, {out / 'ablation.png'}, {out / 'results.json'}")
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gvmlit ablate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", action="append", required=True, help="recipe file(s), as for gvmlit fit (later files win)")
    p.add_argument("--arm", action="append", required=True,
                   help="NAME=VALUE: one arm; VALUE is a class path or a config file for --key, or overrides starting with -- "
                   "(e.g. 'dapo=--model.init_args.dynamic_sampling=true')")
    p.add_argument("--key", default="--model.init_args.allocator", help="the config key the arms swap (default: the allocator)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10, help="EM iterations per run")
    p.add_argument("--metric", default="val/mean@4", help="held-out metric logged against samples (val/<name>_vs_samples)")
    p.add_argument("--levels", nargs="+", type=float, default=[0.45, 0.5, 0.55])
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--title", default="")
    p.add_argument("--out", default="runs/ablate")
    p.add_argument("--summarize", dest="run", action="store_false", help="only summarise the runs that finished")
    return p


def main(argv: list[str]) -> None:
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser().parse_args(argv[:split])
    for arm in args.arm:
        if "=" not in arm:
            raise GvmlitError(f"--arm {arm!r}: write NAME=VALUE, e.g. uniform=gvmlit.allocation.UniformAllocator")
    ablate(args, argv[split + 1 :])
