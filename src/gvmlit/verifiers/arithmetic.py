"""Verifier of the built-in arithmetic task: the integer after the last ``####`` must equal the answer."""

from __future__ import annotations

import re

from gvmlit.records import PromptRecord, Verdict
from gvmlit.verifiers.base import Verifier

_FINAL = re.compile(r"####\s*(-?\d+)")


class ArithmeticVerifier(Verifier):
    """Exact integer match of the final ``#### N`` answer (reward 1 or 0).

    The check is a regular expression and an integer comparison, which cannot hang, so it scores in this
    process by default (``workers=0``); set ``workers`` to run it in worker processes like any verifier.

    Args:
        progress: show a progress bar while scoring.
        workers: worker processes (0 = in this process, the default for this check).
        timeout_seconds: per-answer limit when ``workers`` > 0.
    """

    def __init__(self, progress: bool = True, workers: int = 0, timeout_seconds: float = 10.0) -> None:
        super().__init__(progress=progress, workers=workers, timeout_seconds=timeout_seconds)

    def extract(self, response: str) -> str | None:
        found = _FINAL.findall(response)
        return str(int(found[-1])) if found else None

    def score_one(self, response: str, record: PromptRecord) -> Verdict:
        found = _FINAL.findall(response)
        if not found:
            return Verdict(0.0, "no_answer")
        correct = int(found[-1]) == int(record.answer)
        return Verdict(1.0, "correct") if correct else Verdict(0.0, "wrong")
