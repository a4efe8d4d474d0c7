"""Accuracy of MathVerifier (and of plain math-verify) on a labelled answer-equivalence set.

    python bench/verifier_cases.py ../shared/data/verifier_cases/verifier_cases.jsonl
    python bench/verifier_cases.py CASES.jsonl --show-failures 30 --slowest 10
    python bench/verifier_cases.py tests/data/verifier_benchmark_cases.jsonl

Each line holds ``prediction``, ``gold`` and the label ``expected`` (``disputed`` cases are reported
apart). Prints accuracy overall and per ``kind`` for gvmlit's MathVerifier (default settings, scored in
its worker pool) and for plain ``verify(parse(gold), parse(prediction))``, measured in one run; then the
slowest pairs, timed one by one in this process (``--slowest 0`` skips that pass).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict


def plain(prediction: str, gold: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(prediction)))
    except Exception:  # noqa: BLE001
        return False


def slowest_pairs(cases: list[dict], count: int) -> list[tuple[float, dict, str]]:
    """(seconds, case, outcome) of the ``count`` slowest cases, each scored alone in this process."""
    from gvmlit.records import PromptRecord
    from gvmlit.verifiers import MathVerifier

    verifier = MathVerifier(workers=0, progress=False, cache_size=0)
    verifier.score_one(r"\boxed{x^2}", PromptRecord("warm-up", "", "x*x"))
    timed = []
    for case in cases:
        start = time.perf_counter()
        verdict = verifier.score_one(case["prediction"], PromptRecord(str(case.get("id")), "", case["gold"]))
        timed.append((time.perf_counter() - start, case, verdict.outcome))
    return sorted(timed, key=lambda t: -t[0])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--show-failures", type=int, default=0)
    parser.add_argument("--slowest", type=int, default=10)
    args = parser.parse_args()
    from gvmlit.records import PromptRecord
    from gvmlit.verifiers import MathVerifier

    cases = [json.loads(line) for line in open(args.cases, encoding="utf-8") if line.strip()]
    print(f"{len(cases)} cases; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    verifier = MathVerifier(workers=args.workers, progress=False)
    records = [PromptRecord(str(c.get("id", i)), "", c["gold"]) for i, c in enumerate(cases)]
    start = time.perf_counter()
    ours = [v.reward for v in verifier.score([c["prediction"] for c in cases], records)]
    seconds = time.perf_counter() - start
    verifier.close()
    base = [plain(c["prediction"], c["gold"]) for c in cases]
    by_kind = defaultdict(lambda: [0, 0, 0])
    failures = []
    for case, mine, theirs in zip(cases, ours, base):
        expected = bool(case["expected"])
        row = by_kind[case.get("kind", "?")]
        row[0] += 1
        row[1] += (mine == 1.0) == expected
        row[2] += theirs == expected
        if (mine == 1.0) != expected:
            failures.append(case)
    total = len(cases)
    right = sum((m == 1.0) == bool(c["expected"]) for c, m in zip(cases, ours))
    right_plain = sum(t == bool(c["expected"]) for c, t in zip(cases, base))
    print(f"MathVerifier: {right}/{total} = {right / total:.1%}   plain math-verify: {right_plain}/{total} = {right_plain / total:.1%}")
    undisputed = [(c, m, t) for c, m, t in zip(cases, ours, base) if not c.get("disputed")]
    if len(undisputed) < total:
        ok_und = sum((m == 1.0) == bool(c["expected"]) for c, m, _ in undisputed)
        ok_und_plain = sum(t == bool(c["expected"]) for c, _, t in undisputed)
        print(
            f"without disputed cases: {ok_und}/{len(undisputed)} = {ok_und / len(undisputed):.1%}"
            f"   plain: {ok_und_plain}/{len(undisputed)} = {ok_und_plain / len(undisputed):.1%}"
        )
    print(f"scored in {seconds:.1f} s with {args.workers} workers; outcomes: {dict(verifier.outcomes)}")
    print("| kind | cases | MathVerifier | plain |\n|---|---|---|---|")
    for kind, (n, mine, theirs) in sorted(by_kind.items(), key=lambda kv: -kv[1][0]):
        print(f"| {kind} | {n} | {mine / n:.1%} | {theirs / n:.1%} |")
    for case in failures[: args.show_failures]:
        flags = " (disputed)" if case.get("disputed") else ""
        print(f"- {case.get('id')} {case.get('kind')} expected={case['expected']}{flags}: gold={case['gold'][:60]!r} pred={case['prediction'][-100:]!r}")
    if args.slowest > 0:
        print(f"slowest pairs (scored alone, in-process; load average {os.getloadavg()[0]:.1f}):")
        for seconds, case, outcome in slowest_pairs(cases, args.slowest):
            print(f"- {seconds * 1000:7.1f} ms  {case.get('id')} {case.get('kind')} {outcome}: gold={case['gold'][:50]!r} pred={case['prediction'][-60:]!r}")


if __name__ == "__main__":
    main()
