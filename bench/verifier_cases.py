"""Accuracy of MathVerifier (and of plain math-verify) on a labelled answer-equivalence set.

    python bench/verifier_cases.py ../shared/data/verifier_cases/verifier_cases.jsonl
    python bench/verifier_cases.py CASES.jsonl --show-failures 30

Each line holds ``prediction``, ``gold`` and the label ``expected`` (``disputed`` cases are reported
apart). Prints accuracy overall and per ``kind`` for gvmlit's MathVerifier and for plain
``verify(parse(gold), parse(prediction))``, measured in one run.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict


def plain(prediction: str, gold: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(prediction)))
    except Exception:  # noqa: BLE001
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--show-failures", type=int, default=0)
    args = parser.parse_args()
    from gvmlit.verifiers import MathVerifier

    cases = [json.loads(line) for line in open(args.cases, encoding="utf-8") if line.strip()]
    verifier = MathVerifier(workers=args.workers, progress=False)
    ours = verifier.score([c["prediction"] for c in cases], [c["gold"] for c in cases])
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
    undisputed = [(c, m) for c, m in zip(cases, ours) if not c.get("disputed")]
    print(f"MathVerifier: {right}/{total} = {right / total:.1%}   plain math-verify: {right_plain}/{total} = {right_plain / total:.1%}")
    ok_und = sum((m == 1.0) == bool(c["expected"]) for c, m in undisputed)
    print(f"without disputed cases: {ok_und}/{len(undisputed)} = {ok_und / len(undisputed):.1%}")
    print("| kind | cases | MathVerifier | plain |\n|---|---|---|---|")
    for kind, (n, mine, theirs) in sorted(by_kind.items(), key=lambda kv: -kv[1][0]):
        print(f"| {kind} | {n} | {mine / n:.1%} | {theirs / n:.1%} |")
    print("outcomes:", dict(verifier.outcomes))
    for case in failures[: args.show_failures]:
        print(f"- {case['id']} {case.get('kind')} expected={case['expected']}: gold={case['gold'][:60]!r} pred={case['prediction'][-100:]!r}")
    verifier.close()


if __name__ == "__main__":
    main()
