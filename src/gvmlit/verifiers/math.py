"""MathVerifier: is the response's final answer equal to the gold? math-verify (sympy) behind a front-end.

What is accepted and what is not, with examples: docs/verifier.md. The parts:

- :mod:`gvmlit.verifiers.extraction` — which part of the response is the answer (a configurable policy:
  answer tags, ``\\boxed{}``, ``#### N``, "the answer is …", a bare final line);
- the gold, read per ``gold_format`` (:func:`prepare_gold`): LaTeX, SymPy/Python syntax, plain text,
  or detected (``auto``); a gold that is a whole solution gives its boxed or ``####`` answer;
- :mod:`gvmlit.verifiers.equivalence` — lenient on form, strict on value (numbers at the precision the
  answer states, percentages, expressions symbolically and then numerically, sets, intervals, tuples,
  matrices, equations, text);
- :mod:`gvmlit.verifiers.choice` — a gold that names a multiple-choice option, against the option the
  response chooses (its letter, or the option's text when the problem lists the options).

Scoring runs in worker processes with a hard per-answer limit (:mod:`gvmlit.verifiers.pool`), and
verdicts are cached per (answer, gold). Every outcome is one of ``correct``, ``wrong``, ``no_answer``
(the response states none), ``unparseable_answer``, ``invalid_gold``, ``timeout``, ``error``.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Literal, get_args

from gvmlit.records import PromptRecord, Verdict
from gvmlit.verifiers.base import Verifier
from gvmlit.verifiers.choice import choice_verdict
from gvmlit.verifiers.equivalence import EquivalenceSettings, judge, quick_verdict
from gvmlit.verifiers.extraction import (
    DEFAULT_FORMATS,
    AnswerFormat,
    Choice,
    ExtractionPolicy,
    answer_is_candidates,
    clean_answer,
    extract,
    extract_answer,
    finish,
    is_prose,
    last_boxed,
    strip_reasoning,
)
from gvmlit.verifiers.normalize import looks_like_code, looks_like_python, normalize_unicode, python_to_latex

GoldFormat = Literal["auto", "latex", "sympy", "text"]
GOLD_FORMATS: tuple[str, ...] = get_args(GoldFormat)

__all__ = ["MathVerifier", "extract_answer", "last_boxed", "prepare_gold", "strip_reasoning"]


@functools.lru_cache(maxsize=4096)  # every sample of a prompt shares its gold
def prepare_gold(gold: str, gold_format: str = "auto") -> str | None:
    """The gold answer as the comparison reads it; None when there is none (outcome ``invalid_gold``).

    - ``latex``: LaTeX, with or without ``$…$``; a whole solution gives its last ``\\boxed{}`` group,
      the text after its last ``####``, or what its last "the (final) answer is …" states;
    - ``sympy``: SymPy/Python syntax (``x**6``, ``7*sin(pi*x/5)+1``), translated to LaTeX;
    - ``text``: compared as text only (case, spaces and ``\\text{}`` aside);
    - ``auto``: ``sympy`` when the gold has Python-only syntax and no LaTeX, else ``latex``.
    """
    text = normalize_unicode(str(gold)).strip()
    if not text:
        return None
    if gold_format == "text":
        return clean_answer(text, python_syntax=False) or None
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    elif "\\boxed" in text or "\\fbox" in text:
        boxed = last_boxed(text)
        text = boxed if boxed is not None else text
    elif is_prose(text) and (stated := [c for c in answer_is_candidates(text) if c.strong]):
        text = stated[-1].text  # a solution that ends "The final answer is $28 \\%$"
    if gold_format == "sympy" or (gold_format == "auto" and looks_like_python(text)):
        converted = python_to_latex(text)
        if converted is None:
            return None if gold_format == "sympy" else clean_answer(text, python_syntax=False) or None
        text = converted
    return clean_answer(text, python_syntax=False) or None


class MathVerifier(Verifier):
    """Equivalence of the response's final answer with the gold answer (reward 1 or 0).

    Args:
        workers: worker processes for scoring (0 = score in this process, without a hard timeout).
        timeout_seconds: hard limit on one answer's own work; an answer that takes longer scores 0
            (``timeout``) and the pair is not tried again.
        answer_formats: where the final answer may be stated, among ``answer_tag`` (``<answer>…</answer>``;
            when present only its content counts), ``boxed``, ``hashes`` (``#### N``), ``answer_is``
            ("the answer is …", "Answer: …") and ``final_line`` (the last line, when no marker is found).
        choose: with answers in several places, take the one that comes ``last`` in the text, or the
            last one of the first format in ``answer_formats`` that has one (``format_order``).
        join_boxed: boxes separated only by connectors (``\\boxed{1}, \\boxed{2}``) form one answer.
        prefer_exact: an exact value followed by its approximation (``\\sqrt{2} \\approx 1.414``) is
            judged on the exact value.
        normalize_unicode: map typographic unicode (non-ASCII spaces, ``−``, ``×``, ``√``, ``²``, ``½``)
            to ASCII/LaTeX before extraction.
        gold_format: how golds are written: ``latex``, ``sympy`` (Python syntax, ``x**2``), ``text``
            (compared as text) or ``auto`` (``sympy`` when the gold has Python-only syntax, else ``latex``).
        min_significant_digits: a decimal answer counts as a rounding of an exact value (``2.6667`` for
            ``\\frac{8}{3}``) only when correct to every digit it states and it states at least this many
            significant digits; otherwise decimals must be exactly equal.
        strict_code: an answer in programming-language syntax (``2*sqrt(3)``, ``2**3``, ``20000/pi``; no
            ``$``, no ``\\boxed``) is always read as the expression it is, never as its last number; with
            ``True`` (the safe default) one that does not parse as an expression (``2*sqrt3``) is rejected
            (``unparseable_answer``). ``False`` relaxes that: such an answer falls back to the value
            its sentence states, as before, which also rewards a broken formula that ends in the right
            number.
        cache_size: (answer, gold) verdicts kept in memory.
        progress: show a progress bar while scoring.
    """

    _transient = (*Verifier._transient, "_cache", "_in_worker")

    def __init__(
        self,
        workers: int = 2,
        timeout_seconds: float = 5.0,
        answer_formats: tuple[AnswerFormat, ...] = DEFAULT_FORMATS,
        choose: Choice = "last",
        join_boxed: bool = True,
        prefer_exact: bool = True,
        normalize_unicode: bool = True,
        gold_format: GoldFormat = "auto",
        min_significant_digits: int = 4,
        strict_code: bool = True,
        cache_size: int = 100_000,
        progress: bool = True,
    ) -> None:
        super().__init__(progress=progress, workers=workers, timeout_seconds=timeout_seconds)
        if gold_format not in GOLD_FORMATS:
            raise ValueError(f"gold_format must be one of {', '.join(GOLD_FORMATS)}; got {gold_format!r}")
        if isinstance(min_significant_digits, bool) or not isinstance(min_significant_digits, int) or min_significant_digits < 1:
            raise ValueError(f"min_significant_digits must be an integer >= 1, got {min_significant_digits!r}")
        self.policy = ExtractionPolicy(tuple(answer_formats), choose, join_boxed, prefer_exact, normalize_unicode, strict_code)
        self.gold_format = gold_format
        self.settings = EquivalenceSettings(min_significant_digits, gold_is_text=gold_format == "text")
        self.strict_code = strict_code
        self.cache_size = cache_size

    def _init_transient(self) -> None:
        super()._init_transient()
        self._cache: OrderedDict[Hashable, Verdict] = OrderedDict()
        self._in_worker = False

    # -- the parent side ----------------------------------------------------------------------------

    def extract(self, response: str) -> str | None:
        answer = extract_answer(response, self.policy)
        return None if answer is None else re.sub(r"\s+", "", answer)

    def plan(self, response: str, record: PromptRecord) -> Verdict | tuple[Hashable, Any]:
        found = extract(response, self.policy)
        answer = finish(found.raw, self.policy)
        if self.gold_format != "text":
            choice = choice_verdict(found.region, answer, found.marked, str(record.answer), record.problem or "")
            if choice is not None:
                return choice
        if answer is None:
            return Verdict(0.0, "no_answer")
        gold = prepare_gold(str(record.answer), self.gold_format)
        if gold is None:
            return Verdict(0.0, "invalid_gold")
        if self.strict_code and looks_like_code(answer):
            return Verdict(0.0, "unparseable_answer")  # code syntax that is no expression: never a number
        quick = quick_verdict(answer, gold, self.settings)
        if quick is not None:
            return quick
        return ("math", answer, gold), (answer, gold)

    def affinity(self, key: Hashable) -> Any:
        return key[2]  # the gold: a worker parses it once for all the answers to the same problem

    def recall(self, key: Hashable) -> Verdict | None:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        return super().recall(key)

    def remember(self, key: Hashable, verdict: Verdict) -> None:
        super().remember(key, verdict)
        if verdict.outcome in ("timeout", "error") or self.cache_size <= 0:
            return  # a timeout is remembered by the base class; an error may be a dead worker
        self._cache[key] = verdict
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # -- the worker side ----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Import sympy and math-verify and parse once (the parser builds its grammar on first use)."""
        logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout disabled": the pool enforces it
        self._in_worker = True
        judge("x^2 + \\frac{1}{2}", "\\frac{1}{2} + x^{2}", self.settings)

    def run_task(self, payload: tuple[str, str]) -> Verdict:
        answer, gold = payload
        return judge(answer, gold, self.settings, timeout=self._soft_timeout())

    def _soft_timeout(self) -> int | None:
        """math-verify's own signal-based limit, only in-process (a worker is under the pool's hard one)."""
        if self._in_worker or threading.current_thread() is not threading.main_thread():
            return None
        return max(1, math.ceil(self.timeout_seconds))

    def score_one(self, response: str, record: PromptRecord) -> Verdict:
        """Judge one response in this process (no worker, no hard timeout, no cache)."""
        plan = self.plan(response, record)
        return plan if isinstance(plan, Verdict) else self.run_task(plan[1])
