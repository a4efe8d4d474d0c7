"""Verifier throughput, old code against new code: answers scored per second, alternating A/B in one run.

    python bench/verifier_throughput.py                       # old = the commit before issue 23, 3 pairs
    python bench/verifier_throughput.py --old 80a0fa8         # old = issue 23's first round (before the second)
    python bench/verifier_throughput.py --old REV --pairs 5   # any other revision to compare with
    python bench/verifier_throughput.py --old none            # the working tree alone

Responses are real MATH-500 gold answers written the way models write them (boxed, "the answer is",
GSM8K-style), half of them paired with the right gold and half with another problem's gold. Each run
is a fresh Python process that imports ``gvmlit.verifiers`` from one source tree (the old revision
is unpacked with ``git archive`` into a temporary directory; the repository itself is not touched) and
scores the same list in-process (``workers=0``) and with the worker pool, cache off; identical (answer,
gold) pairs inside one call are still scored once, as in training. Old and new alternate (old, new,
old, new, …), so that a machine whose load drifts slows both alike; the ratio new/old is given per
pair and as the median, with the load average. In-process runs are also counted per CPU second of
their own (``time.process_time``), a rate that other processes' load does not change.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the last commit before issue 23 changed the verifier (it added only the labelled cases)
BEFORE_ISSUE_23 = "0711e9d"
TEMPLATES = [
    "Let me think step by step. ... So the answer is $\\boxed{{{g}}}$.",
    "We find that the result is {g}.\n#### {g}",
    "The answer is ${g}$.",
    "Therefore the final answer is $\\boxed{{{g}}}$. I hope it is correct.",
]

#: what one run does, in its own process, with ``sys.path[0]`` the source tree under test
RUN = r"""
import json, logging, sys, time
sys.path.insert(0, sys.argv[1])
logging.disable(logging.WARNING)
from gvmlit.records import PromptRecord
from gvmlit.verifiers import MathVerifier
data = json.load(open(sys.argv[2]))
responses, records = data["responses"], [PromptRecord(f"p{i}", "", g) for i, g in enumerate(data["golds"])]
out = {}
for workers in (0, int(sys.argv[3])):
    verifier = MathVerifier(workers=workers, cache_size=0, progress=False)
    verifier.score(responses[:8], records[:8])  # import sympy / start the workers outside the timing
    start, cpu = time.perf_counter(), time.process_time()
    verdicts = verifier.score(responses, records)
    out[workers] = {"per_second": len(responses) / (time.perf_counter() - start), "correct": sum(v.reward for v in verdicts),
                    "per_cpu_second": len(responses) / (time.process_time() - cpu)}
    verifier.close()
print(json.dumps(out))
"""


def workload(answers: int) -> dict:
    golds = [json.loads(line)["answer"] for line in (ROOT / "tests" / "fixtures" / "math500_answers.jsonl").open()]
    responses, references = [], []
    for i in range(answers):
        gold = golds[i % len(golds)]
        responses.append(TEMPLATES[(i // len(golds)) % len(TEMPLATES)].format(g=gold))
        references.append(gold if i % 2 == 0 else golds[(i + 1 + i // len(golds)) % len(golds)])
    return {"responses": responses, "golds": references}


def unpack(revision: str, into: Path) -> Path:
    """``src/`` of ``revision``, unpacked with ``git archive`` (no worktree, the repository is untouched)."""
    archive = into / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run(source: Path, data: Path, workers: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(source))
    done = subprocess.run([sys.executable, "-c", RUN, str(source), str(data), str(workers)], capture_output=True, text=True, env=env, check=True)
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3, help="old/new pairs, run alternately")
    parser.add_argument("--old", default=BEFORE_ISSUE_23, help="revision to compare with ('none': the new code alone)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="verifier_throughput_") as tmp:
        data = Path(tmp) / "workload.json"
        data.write_text(json.dumps(workload(args.answers)))
        trees = {"new": ROOT / "src"}
        if args.old != "none":
            trees = {"old": unpack(args.old, Path(tmp)), **trees}
        print(
            f"{args.answers} answers from MATH-500 golds, {args.pairs} rounds of {' / '.join(trees)} "
            f"(old = {args.old}); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        results: dict[str, list[dict]] = {name: [] for name in trees}
        for round_ in range(args.pairs):
            for name, tree in trees.items():
                result = run(tree, data, args.workers)
                results[name].append(result)
                print(
                    f"round {round_ + 1} {name}: {result[0]['per_second']:.0f} answers/s in-process, "
                    f"{result[args.workers]['per_second']:.0f} with {args.workers} workers "
                    f"({result[0]['correct']:.0f} correct); load average {os.getloadavg()[0]:.1f}"
                )
    for workers, rate, label in (
        (0, "per_second", "in-process, answers/s"),
        (0, "per_cpu_second", "in-process, answers per CPU second"),
        (args.workers, "per_second", f"{args.workers} workers, answers/s"),
    ):
        line = ", ".join(f"{name} {statistics.median(r[workers][rate] for r in runs):.0f}" for name, runs in results.items())
        print(f"{label}: median {line}", end="")
        if "old" in results:
            ratios = [n[workers][rate] / o[workers][rate] for o, n in zip(results["old"], results["new"])]
            print(f"; new/old per pair {', '.join(f'{r:.2f}' for r in ratios)}, median {statistics.median(ratios):.2f}x", end="")
        print()


if __name__ == "__main__":
    main()
