"""MathVerifier: answer equivalence with math-verify (sympy-backed).

The final answer is taken from the response, in this order: the last ``\\boxed{…}``, the last
GSM8K-style ``#### …`` line, the last "the answer is …". It is then compared with the gold answer by
``math_verify.verify`` (numbers, fractions, sets, intervals, expressions, LaTeX).
"""

from __future__ import annotations

import re
import threading

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from gvmlit.verifiers.base import Verifier

_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(r"answer is[:\s]*([^\n]+)", re.IGNORECASE)
_EXTRACTION = [LatexExtractionConfig(), ExprExtractionConfig()]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` (or ``\\fbox{…}``) with balanced braces, or None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        # "\boxed 5" form
        rest = text[start:].split(None, 1)
        return rest[1].split("$")[0].strip() if len(rest) > 1 else None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer string of a response, or None when it states none."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for pattern in (_HASHES, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            answer = found[-1].strip().rstrip(".").strip().strip("$").strip()
            return answer or None
    return None


def _as_latex(answer: str) -> str:
    return answer if "$" in answer or "\\(" in answer else f"${answer}$"


class MathVerifier(Verifier):
    """math-verify equivalence of the extracted final answer with the gold answer (reward 1 or 0).

    Args:
        timeout_seconds: math-verify's own per-call timeout (signal based: main thread only).
        float_rounding: decimals kept when comparing floats.
        progress: show a progress bar while scoring.
    """

    def __init__(self, timeout_seconds: int = 5, float_rounding: int = 6, progress: bool = True) -> None:
        super().__init__(progress=progress)
        self.timeout_seconds = timeout_seconds
        self.float_rounding = float_rounding

    def score_one(self, response: str, reference: str) -> tuple[float, str]:
        answer = extract_answer(response)
        if answer is None:
            return 0.0, "no_answer"
        # math-verify's timeouts use SIGALRM, which only works on the main thread.
        timeout = self.timeout_seconds if threading.current_thread() is threading.main_thread() else None
        gold = parse(_as_latex(reference), _EXTRACTION, parsing_timeout=timeout)
        pred = parse(_as_latex(answer), _EXTRACTION, parsing_timeout=timeout)
        if not gold or not pred:
            return 0.0, "no_answer"
        ok = verify(gold, pred, float_rounding=self.float_rounding, timeout_seconds=timeout)
        return (1.0, "correct") if ok else (0.0, "wrong")
