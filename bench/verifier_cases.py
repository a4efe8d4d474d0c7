"""Accuracy of MathVerifier (and of plain math-verify) on a labelled answer-equivalence set.

    python bench/verifier_cases.py data/verifier_cases/verifier_cases.jsonl     # 799 pairs from other projects
    python bench/verifier_cases.py data/verifier_cases/heldout.jsonl            # issue 23's held-out half
    python bench/verifier_cases.py data/verifier_cases/development.jsonl --show-failures 30
    python bench/verifier_cases.py CASES.jsonl --lenient-code                    # MathVerifier(strict_code=False)

Each line holds ``prediction``, ``gold`` and the label ``expected``; optional ``problem`` (the prompt,
which holds a multiple-choice question's options), ``class`` or ``kind`` (the group reported),
``disputed`` (reported apart) and ``config`` (labelled by its source under non-default settings).

A false accept (a wrong answer scored correct) is worse than a false reject: it teaches the policy the
wrong thing. Both are counted apart, and the *weighted score* charges a false accept
``--false-accept-weight`` times (default 3) what a false reject costs:
``1 - (w * false_accepts + false_rejects) / (w * negatives + positives)`` over the non-disputed cases.
A false accept "of a different value" is one on a non-disputed case without ``config``; the others
(a convention of the source) are listed separately. MathVerifier runs with default settings in its
worker pool; plain ``verify(parse(gold), parse(prediction))`` runs in this process, in the same run.
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
        return bool(verify(parse(gold, parsing_timeout=5), parse(prediction, parsing_timeout=5), timeout_seconds=5))
    except BaseException:  # noqa: BLE001 — math-verify's timeout is a BaseException; a crash is a miss
        return False


def record(case: dict, index: int):
    from gvmlit.records import PromptRecord

    return PromptRecord(str(case.get("id", index)), case.get("problem", ""), case["gold"])


def slowest_pairs(cases: list[dict], count: int, strict_code: bool) -> list[tuple[float, dict, str]]:
    """(seconds, case, outcome) of the ``count`` slowest cases, each scored alone in this process."""
    from gvmlit.records import PromptRecord
    from gvmlit.verifiers import MathVerifier

    verifier = MathVerifier(workers=0, progress=False, cache_size=0, strict_code=strict_code)
    verifier.score_one(r"\boxed{x^2}", PromptRecord("warm-up", "", "x*x"))
    timed = []
    for index, case in enumerate(cases):
        start = time.perf_counter()
        verdict = verifier.score_one(case["prediction"], record(case, index))
        timed.append((time.perf_counter() - start, case, verdict.outcome))
    return sorted(timed, key=lambda t: -t[0])[:count]


class Tally:
    """Right answers, false accepts and false rejects of one checker over some cases."""

    def __init__(self) -> None:
        self.cases = self.right = self.positives = self.negatives = 0
        self.false_accepts = self.false_rejects = 0

    def add(self, expected: bool, accepted: bool) -> None:
        self.cases += 1
        self.right += accepted == expected
        self.positives += expected
        self.negatives += not expected
        self.false_accepts += accepted and not expected
        self.false_rejects += expected and not accepted

    def accuracy(self) -> float:
        return self.right / self.cases if self.cases else float("nan")

    def weighted(self, weight: float) -> float:
        total = weight * self.negatives + self.positives
        return 1 - (weight * self.false_accepts + self.false_rejects) / total if total else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--show-failures", type=int, default=0, help="list this many misses (false accepts first)")
    parser.add_argument("--slowest", type=int, default=10, help="time this many slowest pairs alone (0: skip)")
    parser.add_argument("--false-accept-weight", type=float, default=3.0)
    parser.add_argument("--lenient-code", action="store_true", help="score with MathVerifier(strict_code=False)")
    args = parser.parse_args()
    from gvmlit.verifiers import MathVerifier

    cases = [json.loads(line) for line in open(args.cases, encoding="utf-8") if line.strip()]
    print(f"{len(cases)} cases from {args.cases}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    verifier = MathVerifier(workers=args.workers, progress=False, strict_code=not args.lenient_code)
    start = time.perf_counter()
    verdicts = verifier.score([c["prediction"] for c in cases], [record(c, i) for i, c in enumerate(cases)])
    seconds = time.perf_counter() - start
    verifier.close()
    ours = [v.reward == 1.0 for v in verdicts]
    base = [plain(c["prediction"], c["gold"]) for c in cases]

    totals = {"MathVerifier": Tally(), "plain math-verify": Tally()}
    every = {"MathVerifier": Tally(), "plain math-verify": Tally()}
    by_group: dict[str, dict[str, Tally]] = defaultdict(lambda: {"MathVerifier": Tally(), "plain math-verify": Tally()})
    convention_accepts, failures = [], []
    for case, mine, theirs in zip(cases, ours, base):
        expected = bool(case["expected"])
        for name, accepted in (("MathVerifier", mine), ("plain math-verify", theirs)):
            every[name].add(expected, accepted)
            if not case.get("disputed"):
                totals[name].add(expected, accepted)
                by_group[case.get("class", case.get("kind", "?"))][name].add(expected, accepted)
        if mine != expected:
            failures.append(case)
        if mine and not expected and (case.get("disputed") or case.get("config")):
            convention_accepts.append(case)

    undisputed = totals["MathVerifier"].cases
    print(f"scored in {seconds:.1f} s with {args.workers} workers; outcomes: {dict(verifier.outcomes)}")
    print(f"\n| {len(cases)} cases ({len(cases) - undisputed} disputed) | all | without disputed | false accepts | false rejects | weighted score (w={args.false_accept_weight:g}) |")
    print("|---|---|---|---|---|---|")
    for name in totals:
        t, e = totals[name], every[name]
        print(
            f"| {name} | {e.right}/{e.cases} = {e.accuracy():.1%} | {t.right}/{t.cases} = {t.accuracy():.1%} "
            f"| {t.false_accepts} | {t.false_rejects} | {t.weighted(args.false_accept_weight):.1%} |"
        )
    mine = totals["MathVerifier"]
    different = mine.false_accepts - sum(1 for c in convention_accepts if not c.get("disputed"))
    print(
        f"\nMathVerifier false accepts (without disputed): {mine.false_accepts}, of a different value: {different}; "
        f"accepted where only the source's convention says no (config or disputed): {len(convention_accepts)}"
    )
    print(f"\n| class | cases | MathVerifier | false accepts | false rejects | plain math-verify |\n|---|---|---|---|---|---|")
    for group, tallies in sorted(by_group.items(), key=lambda kv: -kv[1]["MathVerifier"].cases):
        t, p = tallies["MathVerifier"], tallies["plain math-verify"]
        print(f"| {group} | {t.cases} | {t.accuracy():.1%} | {t.false_accepts} | {t.false_rejects} | {p.accuracy():.1%} |")
    failures.sort(key=lambda c: bool(c["expected"]))  # false accepts first
    for case in failures[: args.show_failures]:
        flags = " (disputed)" if case.get("disputed") else " (config)" if case.get("config") else ""
        what = "FALSE ACCEPT" if not case["expected"] else "false reject"
        print(f"- {what} {case.get('id')} {case.get('class', case.get('kind'))}{flags}: gold={case['gold'][:60]!r} pred={case['prediction'][-100:]!r}")
    if args.slowest > 0:
        print(f"\nslowest pairs (scored alone, in-process; load average {os.getloadavg()[0]:.1f}):")
        for seconds, case, outcome in slowest_pairs(cases, args.slowest, not args.lenient_code):
            print(f"- {seconds * 1000:7.1f} ms  {case.get('id')} {case.get('class', case.get('kind'))} {outcome}: gold={case['gold'][:50]!r} pred={case['prediction'][-60:]!r}")


if __name__ == "__main__":
    main()
