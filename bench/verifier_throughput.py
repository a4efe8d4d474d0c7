"""Verifier throughput: answers scored per second in this process against the worker pool.

    python bench/verifier_throughput.py                 # ~3000 answers built from MATH-500 golds
    python bench/verifier_throughput.py --workers 4

Responses are real MATH-500 gold answers written the way models write them (boxed, "the answer is",
GSM8K-style), half of them paired with the right gold and half with another problem's gold. The cache
is disabled; identical (answer, gold) pairs inside one call are still scored once, as in training, and
the number of distinct pairs is printed. Both runs score the same list.
"""

from __future__ import annotations

import argparse
import json
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
    from gvmlit.verifiers import MathVerifier, extract_answer

    golds = [json.loads(line)["answer"] for line in (ROOT / "tests" / "data" / "math500_answers.jsonl").open()]
    responses, references = [], []
    i = 0
    while len(responses) < args.answers:
        gold = golds[i % len(golds)]
        template = TEMPLATES[(i // len(golds)) % len(TEMPLATES)]
        responses.append(template.format(g=gold))
        references.append(gold if i % 2 == 0 else golds[(i + 1 + i // len(golds)) % len(golds)])
        i += 1
    distinct = len({(extract_answer(r), g) for r, g in zip(responses, references)})
    print(f"{len(responses)} answers, {distinct} distinct (answer, gold) pairs")
    timings = {}
    for workers in (0, args.workers):
        verifier = MathVerifier(workers=workers, cache_size=0, progress=False)
        if workers:
            verifier.score(responses[:8], references[:8])  # start the worker processes outside the timing
        start = time.perf_counter()
        rewards = verifier.score(responses, references)
        timings[workers] = time.perf_counter() - start
        verifier.close()
        print(f"workers={workers}: {len(responses) / timings[workers]:.0f} answers/s ({sum(rewards):.0f} correct)")
    print(f"speedup with {args.workers} workers: {timings[0] / timings[args.workers]:.2f}x")


if __name__ == "__main__":
    main()
