"""The allocation study, one command: regimes × algorithms × arms × seeds, one JSON file per run, then
every table and plot rebuilt from those files (docs/study/PROTOCOL.md).

    python bench/study.py run                                   # the tuning regimes, every arm, seeds 0–2
    python bench/study.py run --regimes math_like --algorithms grpo --arms uniform gvmpp --seeds 0 1
    python bench/study.py run --split heldout --frozen-commit HASH --seeds 0 … 9     # after the freeze only
    python bench/study.py analyze                               # tables and plots from the run files, seconds
    python bench/study.py run --variant gvmpp_tau03 --base-arm gvmpp -- --model.init_args.allocator.init_args.skip_below=0.3

A run is ``python -m gvmlit.study.runs``: ``gvmlit fit`` stopped at the regime's budget in generated
samples, then ``gvmlit test`` on the regime's 512 test problems (8 samples and a greedy answer each), one
torch thread, in its own process. Its file goes to ``docs/study/runs/<regime>/<algorithm>/<arm>/seed<k>.json``
(``--variant``: ``docs/study/tuning/…``, the design runs GVM++ was chosen with); a run whose file exists is
never run again, so the study resumes run by run. ``--jobs 2`` runs two at a time, one while the load
average is above ``--max-load`` (the machine is shared). ``--git-commit`` commits each run file as it lands.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gvmlit.study.regimes import ALGORITHMS, ARMS, CURVE_SAMPLES, REGIMES, TEST_SAMPLES, run_overrides  # noqa: E402
from gvmlit.study.runs import build_record, source_state  # noqa: E402

_git_lock = threading.Lock()
_start_lock = threading.Lock()


def run_file(out: Path, regime: str, algorithm: str, arm: str, seed: int) -> Path:
    return out / regime / algorithm / arm / f"seed{seed}.json"


def wait_for_room(args) -> None:
    """Start a run only while the load leaves room: with another of ours running and the load average
    above --max-load, wait (others share this machine)."""
    while args.running > 0 and os.getloadavg()[0] > args.max_load:
        time.sleep(15)


def run_one(job, args) -> str:
    regime, algorithm, arm, seed = job
    spec = REGIMES[regime]
    target = run_file(Path(args.out), regime, algorithm, arm, seed)
    if target.exists():
        return f"{target}: done before"
    base = args.base_arm or arm
    overrides = run_overrides(spec, algorithm, base, seed, args.frozen_commit, args.extra)
    if overrides is None:
        return f"{regime}/{algorithm}/{arm}: not an arm of {algorithm}"
    scratch = Path(args.scratch) / target.relative_to(args.out).with_suffix("")
    shutil.rmtree(scratch, ignore_errors=True)  # an interrupted run's partial logs would mix with the rerun's
    scratch.mkdir(parents=True)
    with _start_lock:
        wait_for_room(args)
        args.running += 1
    started = time.perf_counter()
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
        command = [sys.executable, "-m", "gvmlit.study.runs", str(scratch), ALGORITHMS[algorithm], str(TEST_SAMPLES), *overrides]
        with (scratch / "output.log").open("w") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            _, status, usage = os.wait4(proc.pid, 0)  # the run's own CPU time: its wall time on an idle core
            returncode = os.waitstatus_to_exitcode(status)
    finally:
        args.running -= 1
    seconds = time.perf_counter() - started
    if returncode != 0:
        tail = (scratch / "output.log").read_text()[-1500:]
        return f"FAILED {regime}/{algorithm}/{arm}/seed{seed} (exit {returncode}): {scratch / 'output.log'}\n{tail}"
    commit, dirty = source_state(ROOT)
    meta = {
        "regime": regime, "split": spec.split, "algorithm": algorithm, "arm": arm, "seed": seed, "commit": commit, "dirty": dirty,
        "budget": spec.budget, "base_arm": base, "overrides": overrides, "run_seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1), "load_average": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    record = build_record(scratch, meta, CURVE_SAMPLES)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp")
    partial.write_text(json.dumps(record, indent=None, separators=(",", ":")) + "\n")
    partial.replace(target)
    if args.git_commit:
        commit_file(target, f"study run {regime}/{algorithm}/{arm}/seed{seed} ({spec.split})")
    if not args.keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    curve = record["curve"]
    return (f"{regime}/{algorithm}/{arm}/seed{seed}: mean@{CURVE_SAMPLES} {curve[0]['mean_at_k']:.3f} → {curve[-1]['mean_at_k']:.3f}, "
            f"test mean@8 {record['test']['mean_at_k']:.3f} greedy {record['test']['greedy']:.3f}, {record['final']['samples']} samples, {seconds:.0f} s ({meta['cpu_seconds']:.0f} CPU s)")  # fmt: skip


def commit_file(path: Path, message: str) -> None:
    """Commit only ``path`` (other people's staged or unstaged changes stay as they are); retry while
    another git command holds the index lock."""
    with _git_lock:
        for _ in range(40):
            add = subprocess.run(["git", "add", "-f", str(path)], cwd=ROOT, capture_output=True, text=True)  # -f: .gitignore ignores every runs/ folder
            done = add.returncode == 0 and subprocess.run(["git", "commit", "-q", "-m", message, "--", str(path)], cwd=ROOT, capture_output=True).returncode == 0
            if done:
                return
            time.sleep(3)
        print(f"could not commit {path} (index busy?)", flush=True)


def run(args) -> None:
    regimes = args.regimes or [name for name, spec in REGIMES.items() if spec.split == args.split]
    if args.split == "tuning" and any(REGIMES[r].split == "heldout" for r in regimes):
        raise SystemExit("held-out regimes run only with --split heldout and --frozen-commit (docs/study/PROTOCOL.md)")
    if args.variant:
        args.out = str(Path(args.out).parent / "tuning") if args.out == str(ROOT / "docs/study/runs") else args.out
    jobs = [
        (regime, algorithm, args.variant or arm, seed)
        for seed in args.seeds for regime in regimes for algorithm in args.algorithms for arm in (args.arms if not args.variant else [args.variant])
    ]  # fmt: skip
    args.running = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for message in pool.map(lambda job: run_one(job, args), jobs):
            print(message, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="run the runs whose files do not exist yet")
    go.add_argument("--split", choices=["tuning", "heldout"], default="tuning")
    go.add_argument("--regimes", nargs="+", choices=list(REGIMES))
    go.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    go.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    go.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    go.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    go.add_argument("--max-load", type=float, default=3.0, help="start a second run only below this load average")
    go.add_argument("--frozen-commit", help="the commit GVM++ was frozen at (held-out regimes derive their seeds from it)")
    go.add_argument("--variant", help="a design variant's name (its files go to docs/study/tuning/)")
    go.add_argument("--base-arm", help="the arm a variant starts from")
    go.add_argument("--out", default=str(ROOT / "docs/study/runs"))
    go.add_argument("--scratch", default=str(ROOT / "runs/study"), help="where runs write their logs and checkpoints")
    go.add_argument("--keep-scratch", action="store_true")
    go.add_argument("--git-commit", action="store_true", help="commit each run file as it lands")
    show = sub.add_parser("analyze", help="every table and plot from the run files")
    show.add_argument("--runs", nargs="+", default=[str(ROOT / "docs/study/runs")], help="run-file folders (several: pooled)")
    show.add_argument("--out", default=str(ROOT / "docs/study/results"))
    show.add_argument("--title", default="")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.extra = argv[split + 1 :]
    if args.command == "run":
        if args.split == "heldout" and not args.frozen_commit:
            parser.error("--split heldout needs --frozen-commit (docs/study/PROTOCOL.md)")
        run(args)
    else:
        from gvmlit.study.analysis import analyze

        analyze([Path(r) for r in args.runs], Path(args.out))


if __name__ == "__main__":
    main()
