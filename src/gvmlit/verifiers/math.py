"""MathVerifier: answer equivalence with math-verify (sympy), hardened for training loops.

Front-end (what plain ``verify(parse(gold), parse(response))`` gets wrong, see docs/verifier.md):

- the response: reasoning inside ``<think>…</think>`` and special tokens (``<|im_end|>``) are removed;
  an unfinished ``<think>`` block has no answer; the final answer is the last ``\\boxed{…}``, else the
  last ``#### …``, else the last "the answer is …", else whatever math-verify finds in the text;
- the gold: a bare gold (no ``$``, ``\\boxed``) is wrapped as ``$gold$`` so LaTeX parses as a whole,
  and an extracted boxed / ``####`` answer is wrapped the same way.

Scoring runs in worker processes with a hard per-answer timeout (sympy can hang in C code, where
signals do not reach), and results are cached per (answer, gold) pair. Every outcome is one of
``correct``, ``wrong``, ``no_answer`` (the response states none), ``unparseable_answer``,
``invalid_gold``, ``timeout``, ``error``; all are counted in ``outcomes``.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence

from gvmlit.progress import progress_bar
from gvmlit.verifiers.base import Verifier
from gvmlit.verifiers.pool import CRASH, TIMEOUT, WorkerPool

_HASHES = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(r"answer is[:\s]*(\$[^$\n]+\$|\\\(.+?\\\)|[^\n]+?)(?=\.\s|\.?$|\n)", re.IGNORECASE | re.MULTILINE)
_SPECIAL_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|</s>|<eos>|<pad>")
_BRACKETED = re.compile(r"(?<!\\)\[([^\[\]\n]{1,30})\]")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?")
_TEXT_WRAPPERS = re.compile(r"^\\(?:textbf|mathbf|text|mathrm)\{(.*)\}$", re.DOTALL)


_BOX = re.compile(r"\\(?:boxed|fbox)")
_CONNECTOR = re.compile(r"(?:\s|[,;$.]|\\[,;! ]|\\q?quad|\\text\{[^{}]*\}|\band\b|\bor\b|\\\(|\\\))*")


def _boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every ``\\boxed{…}`` / ``\\fbox{…}`` with balanced braces."""
    spans = []
    for match in _BOX.finditer(text):
        brace = match.end()
        while brace < len(text) and text[brace] == " ":
            brace += 1
        if brace >= len(text) or text[brace] != "{":
            rest = text[match.end() :].split(None, 1)  # "\boxed 5" form
            if rest:
                spans.append((match.start(), match.end(), rest[0].split("$")[0]))
            continue
        depth = 0
        for i in range(brace, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                spans.append((match.start(), i + 1, text[brace + 1 : i]))
                break
    return spans


def last_boxed(text: str) -> str | None:
    """The final boxed answer: the last ``\\boxed{…}``, or several boxed answers joined by commas when
    only connectors (``and``, commas, ``\\quad``, ``\\text{and}``) stand between them (multi-part answers)."""
    spans = _boxed_spans(text)
    if not spans:
        return None
    parts = [spans[-1]]
    for earlier in reversed(spans[:-1]):
        gap = text[earlier[1] : parts[0][0]]
        if _CONNECTOR.fullmatch(gap) is None or "\n\n" in gap:
            break
        parts.insert(0, earlier)
    return ", ".join(content.strip() for _, _, content in parts)


def strip_reasoning(text: str) -> str | None:
    """The text after the reasoning block; None when a ``<think>`` block never closes."""
    text = _SPECIAL_TOKENS.sub("", text)
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        return None
    return text


def _clean_boxed(answer: str) -> str:
    answer = answer.strip()
    while (m := _TEXT_WRAPPERS.match(answer)) and m.group(1).count("{") == m.group(1).count("}"):
        answer = m.group(1).strip()
    if re.fullmatch(r"\(\s*-?\d+\s*\)", answer):  # AoPS "\textbf{(073)}"
        answer = answer.strip("() ")
    return _plain_number(answer)


def extract_answer(text: str) -> str | None:
    """The final answer stated in a response, or None when it states none (see module docstring)."""
    body = strip_reasoning(text)
    if body is None:
        return None
    boxed = last_boxed(body)
    if boxed is not None:
        return _clean_boxed(boxed) or None
    for pattern in (_HASHES, _ANSWER_IS, _BRACKETED):  # "[90]": the bracket convention of some datasets
        found = pattern.findall(body)
        if found:
            answer = found[-1].strip().rstrip(".").strip().strip("$").strip()
            return _plain_number(answer) or None
    return None


def _plain_number(answer: str) -> str:
    """``\\$10`` → ``10``; ``10,455`` and ``14{,}916`` → digits without thousands separators."""
    answer = answer.replace("\\$", "").strip()
    if _THOUSANDS.fullmatch(answer):
        answer = answer.replace("{,}", "").replace(",", "")
    return answer


def _wrap(answer: str) -> str:
    if "$" in answer or "\\(" in answer or "\\[" in answer or "\\boxed" in answer:
        return answer
    return f"${answer}$"


def normalize_gold(gold: str) -> str:
    gold = gold.strip()
    if "####" in gold:
        gold = gold.rsplit("####", 1)[1].strip()
    return _wrap(_plain_number(gold))


def _bare(body: str) -> bool:
    """A short response that is only a math expression (no prose), e.g. ``\\frac34i`` or ``x^2 + 2*x + 1``."""
    text = body.strip()
    return 0 < len(text) <= 80 and "\n" not in text and "$" not in text and not re.search(r"[A-Za-z]{4,}", re.sub(r"\\[A-Za-z]+", "", text))


def judge(answer: str | None, body: str, gold: str, timeout: float | None, float_rounding: int) -> tuple[float, str]:
    """Compare one extracted answer (or, when None, the response body) with the gold answer.

    Runs in a worker process (or the main thread); ``timeout`` is math-verify's own signal timeout.
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    extraction = [LatexExtractionConfig(), ExprExtractionConfig()]
    seconds = int(timeout) if timeout and threading.current_thread() is threading.main_thread() else None
    gold_parsed = parse(normalize_gold(gold), extraction, parsing_timeout=seconds)
    if not gold_parsed:
        return 0.0, "invalid_gold"
    if answer is None and _bare(body):
        answer = body.strip()  # a bare expression parses best as LaTeX as a whole
        pred_parsed = parse(_wrap(answer), extraction, parsing_timeout=seconds) or parse(body, extraction, parsing_timeout=seconds)
    else:
        pred_parsed = parse(_wrap(answer) if answer is not None else body, extraction, parsing_timeout=seconds)
    if not pred_parsed:
        return 0.0, "unparseable_answer" if answer is not None else "no_answer"
    ok = verify(gold_parsed, pred_parsed, float_rounding=float_rounding, timeout_seconds=seconds)
    return (1.0, "correct") if ok else (0.0, "wrong")


class MathVerifier(Verifier):
    """math-verify equivalence of the response's final answer with the gold answer (reward 1 or 0).

    Args:
        workers: worker processes for scoring (0 = score in this process, without a hard timeout).
        timeout_seconds: hard limit per answer; an answer that takes longer scores 0 (``timeout``).
        float_rounding: decimals kept when comparing floats.
        cache_size: (answer, gold) results kept in memory.
        progress: show a progress bar while scoring.
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_seconds: float = 5.0,
        float_rounding: int = 6,
        cache_size: int = 100_000,
        progress: bool = True,
    ) -> None:
        super().__init__(progress=progress)
        self.workers = workers
        self.timeout_seconds = timeout_seconds
        self.float_rounding = float_rounding
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, tuple[float, str]] = OrderedDict()
        self._pool: WorkerPool | None = None

    def _key(self, response: str, reference: str) -> tuple[tuple | None, tuple]:
        """(cache key, judge arguments); key None when the response has no answer at all."""
        body = strip_reasoning(response)
        if body is None:
            return None, ()
        answer = extract_answer(response)
        # with an extracted answer the rest of the response is irrelevant: key on the answer alone
        key = ("answer", answer, reference) if answer is not None else ("body", body, reference)
        return key, (answer, body, reference, self.timeout_seconds, self.float_rounding)

    def extract(self, response: str) -> str | None:
        answer = extract_answer(response)
        return None if answer is None else re.sub(r"\s+", "", answer)

    def score_one(self, response: str, reference: str) -> tuple[float, str]:
        results = self._score([response], [reference])
        return results[0]

    def score(self, responses: Sequence[str], references: Sequence[str], desc: str = "verifying") -> list[float]:
        if len(responses) != len(references):
            raise ValueError(f"{len(responses)} responses but {len(references)} references")
        results = self._score(responses, references, desc)
        for _, outcome in results:
            self.outcomes[outcome] += 1
        return [reward for reward, _ in results]

    def _score(self, responses, references, desc: str = "verifying") -> list[tuple[float, str]]:
        keys = [self._key(r, g) for r, g in zip(responses, references)]
        todo = {}
        for key, args in keys:
            if key is not None and key not in self._cache and key not in todo:
                todo[key] = args
        if todo:
            bar = progress_bar(total=len(todo), desc=desc, enabled=self.progress)
            fresh: dict[tuple, tuple[float, str]] = {}

            def store(key, result):
                if result is TIMEOUT:
                    result = (0.0, "timeout")
                elif result is CRASH or (isinstance(result, tuple) and result[0] == "exception"):
                    result = (0.0, "error")
                fresh[key] = result
                bar.update(1)

            if self.workers > 0:
                if self._pool is None:
                    self._pool = WorkerPool(judge, self.workers, self.timeout_seconds)
                self._pool.map(todo.items(), store)
            else:
                for key, args in todo.items():
                    try:
                        store(key, judge(*args))
                    except Exception:  # noqa: BLE001 — one bad answer costs that answer only
                        store(key, CRASH)
            bar.close()
            for key, result in fresh.items():
                if result[1] != "timeout":  # a timeout may be load; do not remember it
                    self._cache[key] = result
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            lookup = {**self._cache, **fresh}
        else:
            lookup = self._cache
        return [(0.0, "no_answer") if key is None else lookup[key] for key, _ in keys]

    def close(self) -> None:
        """Stop the worker processes (they are daemons and also stop with the process)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pool"] = None
        return state
