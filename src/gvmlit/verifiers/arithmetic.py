"""Verifier of the built-in arithmetic task: the integer after the last ``####`` must equal the answer."""

from __future__ import annotations

import re

from gvmlit.verifiers.base import Verifier

_FINAL = re.compile(r"####\s*(-?\d+)")


class ArithmeticVerifier(Verifier):
    """Exact integer match of the final ``#### N`` answer (reward 1 or 0)."""

    def extract(self, response: str) -> str | None:
        found = _FINAL.findall(response)
        return str(int(found[-1])) if found else None

    def score_one(self, response: str, reference: str) -> tuple[float, str]:
        found = _FINAL.findall(response)
        if not found:
            return 0.0, "no_answer"
        correct = int(found[-1]) == int(reference)
        return (1.0, "correct") if correct else (0.0, "wrong")
