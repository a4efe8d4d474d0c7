"""Verifier throughput: answers scored per second in this process and with the worker pool.

    python bench/verifier_throughput.py                 # ~3000 answers built from MATH-500 golds
    python bench/verifier_throughput.py --workers 4

Responses are real MATH-500 gold answers written the way models write them (boxed, "the answer is",
GSM8K-style), half of them paired with the right gold and half with another problem's gold. The cache
is disabled; identical (answer, gold) pairs inside one call are still scored once, as in training, and
the number of distinct pairs is printed. Both runs score the same list, one after the other in this
run, so their ratio is meaningful on a noisy machine; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = [
    "Let me think step by step. ... So the answer is $\\boxed{{{g}}}$.",
    "We find that the result is {g}.\n#### {g}",
    "The answer is ${g}$.",
    "Therefore the final answer is $\\boxed{{{g}}}$. I hope it is correct.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from gvmlit.records import PromptRecord
    from gvmlit.verifiers import MathVerifier, extract_answer

    golds = [json.loads(line)["answer"] for line in (ROOT / "tests" / "data" / "math500_answers.jsonl").open()]
    responses, records = [], []
    i = 0
    while len(responses) < args.answers:
        gold = golds[i % len(golds)]
        template = TEMPLATES[(i // len(golds)) % len(TEMPLATES)]
        responses.append(template.format(g=gold))
        reference = gold if i % 2 == 0 else golds[(i + 1 + i // len(golds)) % len(golds)]
        records.append(PromptRecord(f"p{i}", "", reference))
        i += 1
    distinct = len({(extract_answer(r), rec.answer) for r, rec in zip(responses, records)})
    print(f"{len(responses)} answers, {distinct} distinct (answer, gold) pairs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    timings = {}
    for workers in (0, args.workers):
        verifier = MathVerifier(workers=workers, cache_size=0, progress=False)
        verifier.score(responses[:8], records[:8])  # start the workers / import sympy outside the timing
        start = time.perf_counter()
        verdicts = verifier.score(responses, records)
        timings[workers] = time.perf_counter() - start
        verifier.close()
        correct = sum(v.reward for v in verdicts)
        print(f"workers={workers}: {len(responses) / timings[workers]:.0f} answers/s ({correct:.0f} correct, outcomes {dict(verifier.outcomes)})")
    print(f"speedup with {args.workers} workers: {timings[0] / timings[args.workers]:.2f}x; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
