"""The held-out / development split of the issue-23 cases, reproducible from a seed.

    python data/verifier_cases/split.py ALL.jsonl      # write heldout.jsonl and development.jsonl
    python data/verifier_cases/split.py --check        # re-derive the split from the two files

Method: the cases are grouped by ``class``; within each class (in id order) a ``random.Random(SEED)``
shuffle puts the first ceil(n/2) cases in the held-out half and the rest in the development half, so
every class is in both halves. The split was made and committed before any verifier change.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

SEED = 20250623
HERE = Path(__file__).resolve().parent


def split(cases: list[dict]) -> tuple[list[dict], list[dict]]:
    rng = random.Random(SEED)
    by_class: dict[str, list[dict]] = defaultdict(list)
    for case in sorted(cases, key=lambda c: c["id"]):
        by_class[case["class"]].append(case)
    heldout, development = [], []
    for klass in sorted(by_class):
        group = by_class[klass][:]
        rng.shuffle(group)
        half = (len(group) + 1) // 2
        heldout += group[:half]
        development += group[half:]
    return sorted(heldout, key=lambda c: c["id"]), sorted(development, key=lambda c: c["id"])


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(path: Path, cases: list[dict]) -> None:
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("all", nargs="?", help="all cases (JSONL); omit with --check")
    parser.add_argument("--check", action="store_true", help="verify that heldout.jsonl and development.jsonl are the split")
    args = parser.parse_args()
    if args.check:
        heldout, development = read(HERE / "heldout.jsonl"), read(HERE / "development.jsonl")
        again = split(heldout + development)
        ok = ([c["id"] for c in again[0]], [c["id"] for c in again[1]]) == ([c["id"] for c in heldout], [c["id"] for c in development])
        print(f"{len(heldout)} held out, {len(development)} development: {'the seeded split' if ok else 'NOT the seeded split'}")
        raise SystemExit(0 if ok else 1)
    heldout, development = split(read(Path(args.all)))
    write(HERE / "heldout.jsonl", heldout)
    write(HERE / "development.jsonl", development)
    print(f"{len(heldout)} held out, {len(development)} development")


if __name__ == "__main__":
    main()
