"""Which part of a response is its final answer: an explicit, configurable policy (docs/verifier.md).

Steps, in order:

1. **Unicode** (``normalize_unicode``): non-ASCII spaces, ``−``, ``×``, ``√``, ``π``, ``²``, ``½`` … become
   ASCII/LaTeX, so they cannot break an answer.
2. **Reasoning**: the response ends at the end of its turn (``<|im_end|>``, ``<|endoftext|>``, a new
   ``<|im_start|>`` …); other special tokens are dropped; only the text after the last ``</think>``
   counts, and a ``<think>`` block that never closes has no answer.
3. **Answer tags** (format ``answer_tag``): when the response has ``<answer>…</answer>`` (the R1-Zero
   prompt), only the last tag's content is searched; text outside it is ignored.
4. **Candidates** of the marker formats, wherever they occur: ``boxed`` (``\\boxed{…}``, ``\\fbox{…}``, and
   the broken forms models write: ``boxed{…}`` without its backslash, ``\\box{…}``, a box never closed
   whose content ends at the response's end or its math delimiter: ``$\\boxed{13$.``),
   ``hashes`` (``#### N``, GSM8K), ``answer_is`` ("the answer is …", "Answer: …", "答案是 …").
   ``choose="last"`` takes the candidate that comes last in the text (a final "The final answer is 12"
   after intermediate boxes wins); ``choose="format_order"`` takes the last candidate of the first
   format in ``formats`` that has one. "The answer is" followed by prose with no value ("…is correct")
   is used only when nothing else is there.
5. **Several boxes**: with ``join_boxed``, boxes separated only by connectors (``,``, "and", ``\\quad``)
   form one multi-part answer (``\\boxed{1}, \\boxed{2}`` → ``1, 2``), and so do boxes that each follow
   another name (``$y_1 = \\boxed{A}$ and $y_2 = \\boxed{B}$`` → ``y_1 = A, y_2 = B``). With ``prefer_exact``, a value
   followed by its approximation (``\\boxed{\\sqrt{2}} \\approx \\boxed{1.414}``, or ``\\sqrt{2} \\approx
   1.414`` inside one box) is judged on the exact value.
6. **Bare final line** (format ``final_line``), when no marker is found: in the last sentence of the
   last line, its last math segment, the sentence itself when it is a bare expression, or else the
   value it states (a short phrase after the verb when it states no value: "the function is even").
   An expression in programming-language syntax (``2*sqrt(3)``, ``18 + 2*pi``) is one value, read whole;
   with ``strict_code`` one that does not parse as an expression is kept whole (and rejected later),
   never reduced to its last number.
7. **Cleaning**: delimiters (``$``, ``\\(``), ``\\text{}`` wrappers, currency ``\\$``, a trailing period,
   filler words ("the answer is *therefore* 8"), percentages (one spelling, ``12.5\\%``), a named
   quantity's value cleaned as an answer of its own (``m = 2 1/3 kg`` → ``m = \\frac{7}{3}``), a name
   before ``\\approx`` (``\\Delta p \\approx -\\frac{\\hbar\\omega}{c}`` → its value), a reversed equation
   (``5 = x``, ``\\frac{q_0}{\\sqrt{2LC}} = I_{\\max}`` → the name first), mixed numbers as the fractions
   they are (``4 4/9`` → ``\\frac{40}{9}``), code syntax (``x**2``, ``6*r^2``) and number notation
   (:mod:`gvmlit.verifiers.normalize`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from gvmlit.verifiers.normalize import (
    CODE_NAME,
    NAME,
    looks_like_code,
    mixed_numbers,
    named_quantity,
    normalize_math,
    normalize_numbers,
    normalize_unicode,
    percent_body,
    python_to_latex,
    scan_code,
)

AnswerFormat = Literal["answer_tag", "boxed", "hashes", "answer_is", "final_line"]
ANSWER_FORMATS: tuple[str, ...] = get_args(AnswerFormat)
#: longest answer cleaned in the parent; a longer "answer" (a runaway generation) goes to the checker as is
MAX_ANSWER_CHARS = 1000
DEFAULT_FORMATS: tuple[AnswerFormat, ...] = ("answer_tag", "boxed", "hashes", "answer_is", "final_line")
Choice = Literal["last", "format_order"]
CHOICES: tuple[str, ...] = get_args(Choice)


@dataclass(frozen=True)
class ExtractionPolicy:
    """How the final answer is found in a response (module docstring; MathVerifier's arguments)."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    choose: str = "last"
    join_boxed: bool = True
    prefer_exact: bool = True
    normalize_unicode: bool = True
    #: an answer in code syntax that does not parse stays whole (to be rejected) instead of giving a number
    strict_code: bool = True

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in ANSWER_FORMATS]
        if unknown or not self.formats:
            raise ValueError(f"answer_formats must be a non-empty list of {', '.join(ANSWER_FORMATS)}; got {list(self.formats)}")
        if self.choose not in CHOICES:
            raise ValueError(f"choose must be one of {', '.join(CHOICES)}; got {self.choose!r}")


@dataclass(frozen=True)
class Candidate:
    start: int
    text: str
    format: str
    #: False for "the answer is …" followed by prose with no value: used only when nothing else is found
    strong: bool = True


# -- reasoning and tags -----------------------------------------------------------------------------

_SPECIAL_TOKENS = re.compile(r"<\|[^|>\s]{1,40}\|>|</s>|<s>|<eos>|<pad>|<end_of_turn>|<start_of_turn>")
#: the turn ends here; what follows (a hallucinated next turn) is not part of the response
_END_OF_TURN = re.compile(r"<\|(?:im_end|endoftext|eot_id|end|im_start)\|>|</s>|<end_of_turn>")


def strip_reasoning(text: str) -> str | None:
    """The response proper: cut at the end of its turn, special tokens dropped, and only the text after
    the last ``</think>``; None when a ``<think>`` block never closes."""
    previous_end = 0
    for end in _END_OF_TURN.finditer(text):
        if _SPECIAL_TOKENS.sub("", text[previous_end : end.start()]).strip():
            text = text[: end.start()]
            break
        previous_end = end.end()
    text = _SPECIAL_TOKENS.sub("", text)
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        return None
    return text


def answer_tag_content(text: str) -> str | None:
    """Content of the last ``<answer>…</answer>`` (or of a final unclosed ``<answer>``); None without tags."""
    lower = text.lower()
    opening = lower.rfind("<answer>")
    if opening < 0:
        return None
    closing = lower.find("</answer>", opening)
    return text[opening + len("<answer>") : closing if closing >= 0 else len(text)]


# -- boxed ------------------------------------------------------------------------------------------

#: ``\\boxed``, ``\\fbox``, and what models write instead: ``\\box{``, ``boxed{`` without its backslash
_BOX = re.compile(r"\\(?:boxed|fbox|box(?=\s*\{))(?![A-Za-z])|(?<![\\A-Za-z])boxed(?=\s*\{)")
#: where the content of a box that is never closed ends: the math delimiter, a blank line, the next box
_UNCLOSED_END = re.compile(r"(?<!\\)\$|\\\]|\\\)|\n\s*\n|\\?boxed|\\fbox|\\box\b")
#: longest content taken from a box that is never closed
MAX_UNCLOSED_CHARS = 200
_CONNECTOR = re.compile(r"(?:\s|[,;$.]|\\[,;! ]|\\q?quad|\\text\{[^{}]*\}|\band\b|\bor\b|\\\(|\\\)|\\\[|\\\])*")
_APPROX = re.compile(r"\\approx|\\simeq|\\thickapprox|\bapproximately\b|\babout\b|\\sim(?![a-z])")


def _closing_braces(text: str) -> dict[int, int]:
    """Index of the closing brace of every ``{`` that is closed, in one pass (a response with thousands
    of unclosed boxes must not cost a scan to the end for each)."""
    closing, stack = {}, []
    for i, char in enumerate(text):
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            closing[stack.pop()] = i
    return closing


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every ``\\boxed{…}`` / ``\\fbox{…}`` with balanced braces."""
    spans = []
    closing = None
    for match in _BOX.finditer(text):
        brace = match.end()
        while brace < len(text) and text[brace] == " ":
            brace += 1
        if brace >= len(text) or text[brace] != "{":
            rest = text[match.end() : match.end() + 100].split(None, 1)  # "\boxed 5" form
            if rest:
                spans.append((match.start(), match.end(), rest[0].split("$")[0]))
            continue
        if closing is None:
            closing = _closing_braces(text)
        end = closing.get(brace)
        if end is not None:
            spans.append((match.start(), end + 1, text[brace + 1 : end]))
        elif (unclosed := _unclosed_content(text, brace + 1)) is not None:
            spans.append((match.start(), brace + 1 + len(unclosed), unclosed))
    return spans


def _unclosed_content(text: str, start: int) -> str | None:
    """The content of a box whose brace never closes (a truncated or malformed response): up to the
    math delimiter, a blank line or the next box, when it is short and its own braces balance."""
    end = _UNCLOSED_END.search(text, start, start + MAX_UNCLOSED_CHARS + 1)
    content = text[start : end.start() if end else start + MAX_UNCLOSED_CHARS + 1]
    if end is None and len(text) - start > MAX_UNCLOSED_CHARS:
        return None
    content = content.rstrip().rstrip(".,;")
    depth = 0
    for char in content:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return None
    if depth != 0 or not content.strip() or _is_prose(content):
        return None
    return content


#: a box's label: "$y_1 = \\boxed{…}$", "I_{\\max} = \\boxed{…}"
_LABEL = re.compile(rf"(?<![A-Za-z\\])({NAME})\s*=\s*(?:\\\(|\\\[|\$)?\s*$")


def _label(text: str, end: int) -> str | None:
    """The name that labels the box starting at ``text[end]`` (``y_1 = \\boxed{…}``), or None."""
    if "=" not in text[max(0, end - 60) : end]:
        return None
    match = _LABEL.search(text, max(0, end - 60), end)
    return match.group(1).strip() if match is not None else None


def boxed_candidates(text: str, join: bool = True, prefer_exact: bool = True) -> list[Candidate]:
    """One candidate per group of boxes (see module docstring, step 5). Boxes that each follow a
    different name (``y_1 = \\boxed{A}`` and ``y_2 = \\boxed{B}``) form one answer that keeps the names:
    ``y_1 = A, y_2 = B``."""
    groups: list[list[tuple[int, int, str]]] = []
    labelled: list[bool] = []
    for span in boxed_spans(text):
        if groups:
            gap = text[groups[-1][-1][1] : span[0]]
            if prefer_exact and _APPROX.search(gap) and _CONNECTOR.fullmatch(_APPROX.sub("", gap).replace("=", "")):
                continue  # an approximation of the box before it
            if join and "\n\n" not in gap:
                if _CONNECTOR.fullmatch(gap) is not None:
                    groups[-1].append(span)
                    labelled[-1] = False
                    continue
                if "=" in gap and (len(groups[-1]) > 1 and labelled[-1] or _label(text, groups[-1][0][0]) is not None):
                    label = _label(text, span[0])
                    if label is not None and _CONNECTOR.fullmatch(gap[: gap.rfind(label)]) is not None:
                        groups[-1].append(span)
                        labelled[-1] = True
                        continue
        groups.append([span])
        labelled.append(False)
    candidates = []
    for group, named in zip(groups, labelled):
        if named and len({_label(text, start) for start, _, _ in group}) == len(group):
            answer = ", ".join(f"{_label(text, start)} = {content.strip()}" for start, _, content in group)
        else:
            answer = ", ".join(content.strip() for _, _, content in group)
        candidates.append(Candidate(group[0][0], answer, "boxed"))
    return candidates


def last_boxed(text: str) -> str | None:
    """The content of the final group of boxes (joined by commas), or None."""
    candidates = boxed_candidates(text)
    return candidates[-1].text if candidates else None


# -- "####" and "the answer is" ---------------------------------------------------------------------

_HASHES = re.compile(r"####[ \t]*([^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:\b(?:final\s+)?answer\s*(?:is|was|would\s+be|should\s+be|will\s+be|equals)\b"
    # "Answer: 42" starts a line or a sentence ("we check our answer: …" states none)
    r"|(?:^|(?<=\n)|(?<=[.!?*#>]\s)|(?<=\*\*))[ \t*#>]{0,8}(?:the\s+)?(?:final\s+)?answer\s*(?:\*\*)?\s*[:=]"
    r"|\b(?:réponse|respuesta|resposta|antwort|risposta|ответ)(?:\s+(?:finale?|final))?\s*(?:est|es|é|ist|è)?\s*[:=]"
    r"|答案\s*(?:是|为|為|[:=])|结论\s*[:=])",
    re.IGNORECASE | re.MULTILINE,
)
_NOT_AN_ANSWER = re.compile(r"^(?:not\b|correct\b|incorrect\b|right\b|wrong\b|reasonable\b|consistent\b|below\b|above\b|as follows\b|the following\b|clear\b|choice\b|choices\b)", re.IGNORECASE)
_FILLER = re.compile(
    r"^(?:[*:,\s]|therefore\b|thus\b|hence\b|then\b|so\b|indeed\b|clearly\b|simply\b|just\b|exactly\b|actually\b"
    r"|now\b|finally\b|also\b|still\b|equal\s+to\b|given\s+by\b|that\b|the\s+(?:value|number|result)\b|of\b|obtained\b)+",
    re.IGNORECASE,
)
#: ``$$…$$``, ``$…$``, ``\(…\)``, ``\[…\]`` (bounded: an unclosed ``$`` must not cost a scan to the end)
_MATH_SEGMENT = re.compile(
    r"(?<!\\)\$\$(.{1,2000}?)(?<!\\)\$\$|(?<!\\)\$(.{1,2000}?)(?<!\\)\$|\\\((.{1,2000}?)\\\)|\\\[(.{1,2000}?)\\\]", re.DOTALL
)
#: where the statement of an answer ends: a sentence, or a new clause ("5, which is prime"; not ", and 7")
_SENTENCE_END = re.compile(r"\.(?=\s|$)|[;!?](?=\s|$)|\n|,\s+(?!and\b|or\b)(?=[A-Za-z]{3,})")
#: a markdown heading, not an answer: "#### Step 2: simplify", "#### Checking the result"
_HEADING = re.compile(r"^[A-Z][a-z]+(?:\s+[A-Za-z]+)+\s*:?\s*$|^(?:Step|Part|Case|Problem|Solution|Verification|Conclusion)\b")
_BRACED = r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}"
#: a value inside prose: a fraction or root in LaTeX (``2\\frac{1}{3}``), a mixed number (``4 4/9``), or a number
#: (not an exponent, subscript or digit of a word), with its percent sign or word
_VALUE_TOKEN = re.compile(
    rf"-?\d*\\[dt]?frac{_BRACED}{_BRACED}|-?\d*\\sqrt{_BRACED}"
    r"|(?<![A-Za-z0-9_^{}.\\])-?(?:\d+[ \t]+\d+[ \t]*/[ \t]*\d+(?![\d.,/])|(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+(?:\.\d+)?)?)"
    r"(?:\s*(?:\\?%|(?:percent|per\s?cent|pct)\b))?"
)
#: the verb before a stated value: "the largest $n$ *is* 34", "每份应该*是* 2/5"
_COPULA = re.compile(r"\b(?:is|are|was|were|be|equals|gives|becomes)\b|=|是|为|為")
_WORD = re.compile(r"(?<!\S)[A-Za-z]{3,}[,.;:!?']?(?!\S)")
_NON_ASCII_LETTER = re.compile(r"[^\x00-\x7F]")


_SEGMENT_JOINER = re.compile(r"\s*(?:,|;|\band\b|\bor\b)\s*")


def _segment_text(match: re.Match) -> str:
    """The content of a ``_MATH_SEGMENT`` match, whichever delimiters it had."""
    return next(group for group in match.groups() if group is not None)


def _first_math_segment(text: str) -> tuple[int, str] | None:
    """(start, content) of the first math segment; segments that follow it separated only by a comma
    or "and" (``$69$, $84$``) are one multi-part answer and are joined."""
    match = _MATH_SEGMENT.search(text)
    if match is None:
        return None
    start, parts = match.start(), [_segment_text(match)]
    while (following := _MATH_SEGMENT.search(text, match.end())) is not None:
        if _SEGMENT_JOINER.fullmatch(text[match.end() : following.start()]) is None:
            break
        parts.append(_segment_text(following))
        match = following
    return start, ", ".join(parts)


def _is_prose(text: str) -> bool:
    """Words rather than a value: two space-separated words of 3+ letters outside LaTeX commands, or
    non-ASCII letters (``SRAC=LRAC`` is a value, ``the volume is 120`` is prose)."""
    bare = re.sub(r"\\(?:begin|end)\{[A-Za-z*]+\}|\\text\{[^{}]*\}|\\[A-Za-z]+", " ", text)
    return len(_WORD.findall(bare)) >= 2 or bool(_NON_ASCII_LETTER.search(bare))


is_prose = _is_prose  # public: a gold that is a whole solution (math.prepare_gold)


#: where an expression in code syntax may start: a number, a parenthesis, a function or constant name
_CODE_START = re.compile(
    r"(?<![\w.\\])(?:\(|\d|\.\d|(?:np\.|math\.)?(?:sqrt|cbrt|exp|log|ln|sin|cos|tan|pi|abs|Abs)\b"
    rf"|(?:{CODE_NAME.pattern})(?=\s*(?:\*|\^|/)))"  # a name: "x*y", "q_0/sqrt(2*L*C)", "hbar*omega_L/c"
)


#: values joined by code operators, whatever the values are ("2*sqrt3", "3x**2y"); an operator spaced on
#: one side only is markdown emphasis ("is *42*"), not code
_CODE_RUN = re.compile(r"(?<![\w.\\])[\w.]*\w(?:(?:\s+(?:\*\*|\*|\^)\s+|(?:\*\*|\*|\^))[\w(][\w.()]*)+")


def _code_values(text: str, strict: bool) -> list[tuple[int, int, str]]:
    """(start, end, text) of the expressions in code syntax in a piece of prose. An expression that does
    not translate is kept only with ``strict`` (it is then rejected whole, not read as a number)."""
    if "*" not in text and "(" not in text and "^" not in text and "pi" not in text:
        return []
    found, position = [], 0
    while (match := _CODE_START.search(text, position)) is not None:
        start = match.start()
        if start > 0 and text[start - 1] == "-" and (start < 2 or not text[start - 2].isalnum()):
            start -= 1
        end, reached = scan_code(text, start)
        if end is None:
            position = max(match.end(), reached)
            continue
        expression = text[start:end].strip()
        if strict or python_to_latex(normalize_numbers(expression)) is not None:
            found.append((start, end, expression))
        position = end
    if strict:  # what is written as code but is no expression ("2*sqrt3") stays whole, never a number
        for match in _CODE_RUN.finditer(text):
            if not any(a <= match.start() < b for a, b, _ in found):
                found.append((match.start(), match.end(), match.group()))
    return found


def _values(text: str, strict_code: bool = True) -> list[str]:
    """The math segments and values of a piece of prose, in order; an expression in code syntax is one
    value (``2*sqrt(3)``, not 2 and 3)."""
    found = []
    taken = []
    for match in _MATH_SEGMENT.finditer(text):
        found.append((match.start(), _segment_text(match)))
        taken.append((match.start(), match.end()))
    for start, end, expression in _code_values(text, strict_code):
        if not any(a <= start < b for a, b in taken):
            found.append((start, expression))
            taken.append((start, end))
    for match in _VALUE_TOKEN.finditer(text):
        if not any(a <= match.start() < b for a, b in taken):
            found.append((match.start(), match.group().strip()))
    return [value for _, value in sorted(found)]


#: a short phrase that a sentence states after its verb when it states no value ("… is even", "is no solution")
_PHRASE = re.compile(r"^\s*(?:an?\s+|the\s+)?((?:[A-Za-z][A-Za-z'-]*)(?:\s+[A-Za-z][A-Za-z'-]*){0,2})\s*[.!]?\s*$")


def _value_in_prose(text: str, last: bool, strict_code: bool = True, phrase: bool = False) -> str | None:
    """The value a sentence states: the first one after its last copula ("the volume of $V$ is 120"),
    else its first (or, with ``last``, its last) value; with ``phrase``, a sentence without a value
    states the short phrase after its last copula ("the function is even")."""
    parts = _COPULA.split(text)
    if len(parts) > 1 and (after := _values(parts[-1], strict_code)):
        return after[0]
    values = _values(text, strict_code)
    if values:
        return values[-1] if last else values[0]
    if phrase and len(parts) > 1 and (match := _PHRASE.match(parts[-1])) is not None:
        return match.group(1)
    return None


def hashes_candidates(text: str) -> list[Candidate]:
    """``#### N`` answers; markdown headings (``#### Step 2: simplify``) are not answers."""
    out = []
    for match in _HASHES.finditer(text):
        capture = re.sub(r"^(?:final\s+)?answer\s*[:：]?\s*", "", match.group(1).strip(), flags=re.IGNORECASE)
        if not capture or "\\boxed" in capture or _HEADING.match(capture):
            continue
        out.append(Candidate(match.start(), capture, "hashes"))
    return out


def answer_is_candidates(text: str, strict_code: bool = True) -> list[Candidate]:
    """"The answer is …" answers: the value right after the phrase, up to the end of its sentence."""
    out = []
    for match in _ANSWER_IS.finditer(text):
        rest = text[match.end() : match.end() + MAX_ANSWER_CHARS]
        rest = _FILLER.sub("", rest.lstrip())
        if not rest or _NOT_AN_ANSWER.match(rest):
            continue
        segment = _first_math_segment(rest[:400])
        if segment is not None and segment[0] == 0:
            capture = segment[1]
        else:
            end = _SENTENCE_END.search(rest)
            capture = rest[: end.start()] if end else rest[:200]
            capture = _FILLER.sub("", capture).strip()
            if capture.endswith("**") and capture.count("**") % 2 and not capture.endswith("***"):
                capture = capture[:-2].rstrip()  # "**Answer: C**": the bold closes after the answer
        if not capture or "\\boxed" in capture or "\\fbox" in capture:
            continue
        strong = True
        if _is_prose(capture):
            value = _value_in_prose(capture, last=False, strict_code=strict_code)
            if value is None:
                strong = False
            else:
                capture = value
        out.append(Candidate(match.start(), capture, "answer_is", strong))
    return out


# -- the bare final line ----------------------------------------------------------------------------

_BOILERPLATE = re.compile(r"\s*I hope (?:it|this) is correct\.?\s*$", re.IGNORECASE)
#: list and quote markers, headings, and bold ``**`` (not a power: ``2**3`` keeps its ``**``)
_MARKDOWN = re.compile(r"^\s*(?:#+\s+|>\s*|[*+\-]\s+|\d+\.\s+)|(?<![\w)])\*\*|\*\*(?![\w(])")
#: a sentence ends with . ! ? (not LaTeX's ``\!``), possibly inside the closing ``$`` of a formula
_SENTENCES = re.compile(r"(?:(?<=[^\\\s][.!?])|(?<=[^\\\s][.!?]\$)|(?<=[^\\\s][.!?]\$\$))\s+(?=[A-Z\\$])")


_CODE_CALL = re.compile(r"\b(?:sqrt|cbrt|exp|log10|log|sinh|cosh|tanh|arcsin|arccos|arctan|asin|acos|atan|floor|ceil|ceiling|factorial|binomial|Rational|root)\s*\(")


def bare_expression(text: str) -> bool:
    """A short text that is only a math expression (no prose), e.g. ``\\frac34i``, ``x^2 + 2*x + 1`` or
    ``2*sqrt(3)`` (a function call in code is not a word)."""
    text = text.strip()
    if not 0 < len(text) <= 120 or "\n" in text or _is_prose(text):
        return False
    bare = re.sub(r"\\(?:begin|end)\{[a-z*]+\}|\\[A-Za-z]+|\\text\{[^{}]*\}", " ", text)
    return not re.search(r"[A-Za-z]{4,}", _CODE_CALL.sub("(", bare))


def final_line_answer(text: str, strict_code: bool = True) -> str | None:
    """The answer stated at the end of a response that has no answer marker (step 6): the last sentence
    of the last line; its last math segment, the sentence itself when it is a bare expression, or its
    last value."""
    text = _BOILERPLATE.sub("", text.rstrip()[-4 * MAX_ANSWER_CHARS :])  # the end is where it is stated
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    last_line = lines[-1]
    sentence = _SENTENCES.split(last_line.strip())[-1]
    sentence_start = text.rfind(sentence)
    segments = list(_MATH_SEGMENT.finditer(text))
    if segments and segments[-1].end() > sentence_start:  # also a display block that ends on this line
        run = [segments[-1]]  # "$(1, 2)$, $(3, 4)$": segments joined by commas are one answer
        for earlier in reversed(segments[:-1]):
            if _SEGMENT_JOINER.fullmatch(text[earlier.end() : run[0].start()]) is None:
                break
            run.insert(0, earlier)
        return ", ".join(_segment_text(m) for m in run)
    sentence = _MARKDOWN.sub("", sentence).strip()
    if _BOX.search(sentence):
        return None  # a box cut off inside its content: no answer rather than a fragment
    if bare_expression(sentence):
        return sentence
    return _value_in_prose(sentence, last=True, strict_code=strict_code, phrase=True)


# -- cleaning ---------------------------------------------------------------------------------------

_DELIMITERS = re.compile(r"^(?:\$\$|\$|\\\(|\\\[)\s*(.*?)\s*(?:\$\$|\$|\\\)|\\\])$", re.DOTALL)
_WRAPPERS = re.compile(r"^\\(?:textbf|mathbf|text|mathrm|boxed|fbox|textit|mathit|emph)\s*\{(.*)\}$", re.DOTALL)
_FONT_LETTER = re.compile(r"\\(?:mathcal|mathscr|mathfrak|mathbf|mathrm|textbf|boldsymbol|bm|mathit|textit)\s*\{\s*([A-Za-z])\s*\}")
_LIST_WORD = re.compile(r",?\s*\\text\{\s*,?\s*(?:and|or)\s*\}\s*|(?<=[\d}\)\]])\s*,?\s+(?:and|or)\s+(?=[-\d\\(\[{A-Za-z])")
#: "12 dollars", "25 cm", "2 1/3 cups": a number and the words of its unit (not "2 pi", which is a product)
_NUMBER_WITH_UNIT = re.compile(r"^(-?(?:\d+\s+\d+\s*/\s*\d+|\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?)\s+((?:[A-Za-z]{2,}[\s-]?)+)$")
#: a name alone (``x``, ``I_{\max}``, ``\Delta p``): what an equation or an approximation is about
_NAME_ONLY = re.compile(rf"\s*{NAME}\s*")
_MATH_WORDS = {"pi", "sin", "cos", "tan", "ln", "log", "sqrt", "exp", "mod", "and", "or"}
_NAMED_VALUES = {"infinity": r"\infty", "inf": r"\infty", "pi": r"\pi"}


def _unwrap(answer: str) -> str:
    """Strip delimiters and whole-answer wrappers (``$…$``, ``\\text{…}``, ``\\textbf{(073)}``)."""
    previous = None
    for _ in range(10):  # wrappers nest a few deep in real answers; a runaway string must not loop long
        if answer == previous:
            break
        previous = answer
        answer = answer.strip()
        if (m := _DELIMITERS.match(answer)) is not None:
            answer = m.group(1)
        if (m := _WRAPPERS.match(answer)) is not None and m.group(1).count("{") == m.group(1).count("}"):
            answer = m.group(1)
        if answer.startswith("**") and answer.endswith("**") and len(answer) > 4:
            answer = answer[2:-2]
        if (m := re.fullmatch(r'\\?"(.*?)\\?"', answer, re.DOTALL)) is not None:  # a quoted answer
            answer = m.group(1)
        if re.fullmatch(r"\(\s*(?:-?\d+|[A-Z])\s*\)", answer):  # AoPS "\textbf{(073)}", choices "(C)"
            answer = answer.strip("() ")
        if answer.startswith("{") and answer.endswith("}") and _closing_braces(answer).get(0) == len(answer) - 1:
            answer = answer[1:-1]  # a doubled brace: \boxed{{…}}
    return answer


def _exact_part(answer: str, prefer_exact: bool) -> str:
    """Of ``exact \\approx decimal``, the exact value (or, without ``prefer_exact``, the last part)."""
    parts = [part.strip() for part in _APPROX.split(answer)]
    if len(parts) == 1:
        return answer
    if _NAME_ONLY.fullmatch(parts[0].rstrip("= ")):
        # "x \approx 1.41", "\Delta p \approx -\frac{\hbar\omega}{c}": a name first, then its value
        parts = parts[1:]
        if len(parts) == 1:
            return parts[0]
    if not prefer_exact:
        return parts[-1]
    first = parts[0].rstrip("= ")
    return first if re.search(r"[\d\\]", first) else parts[-1]


def _percent(answer: str, prefer_exact: bool, python_syntax: bool) -> str | None:
    """``12.5\\%`` for a percentage however it is spelled (``12.5 per cent``, ``4 4/9 pct``), else None."""
    body = percent_body(answer)
    if body is None:
        return None
    body = clean_answer(body, prefer_exact, python_syntax)
    return f"{body}\\%" if body else None


def _code_to_latex(answer: str) -> str | None:
    """LaTeX for an answer in code syntax, an equation (``x = (1 + sqrt(5))/2``) side by side; None when
    a side is no expression."""
    sides = [python_to_latex(normalize_numbers(side)) for side in answer.split("=")]
    return None if None in sides else " = ".join(sides)


def clean_answer(answer: str, prefer_exact: bool = True, python_syntax: bool = True) -> str:
    """The canonical text of an extracted answer (step 7 of the module docstring); may be empty.
    ``python_syntax``: translate an answer in programming-language syntax (``x**2``, ``6*r^2``) to LaTeX."""
    answer = answer.replace("\\$", "").strip()
    answer = _unwrap(answer)
    answer = answer.replace("$", "")
    answer = _exact_part(answer, prefer_exact)
    answer = _unwrap(answer)
    answer = re.sub(r"(?:\\[,;!]|\\q?quad|\\+(?=\s*$)|\s)+$", "", answer)  # trailing spacing, "\\\\", a stray "\\"
    answer = answer.rstrip(".,;:!").strip()
    answer = answer.lstrip(":=").strip()
    answer = re.sub(r"\s+", " ", answer)
    if answer.lower() in _NAMED_VALUES:
        return _NAMED_VALUES[answer.lower()]
    if (percentage := _percent(answer, prefer_exact, python_syntax)) is not None:
        return percentage
    if "=" in answer and (named := named_quantity(answer)) is not None:
        value = clean_answer(named[1], prefer_exact, python_syntax)  # "x = 2 1/3 cups": the value cleaned
        if value:
            return _FONT_LETTER.sub(r"\1", named[0].strip()) + " = " + value
    if (m := _NUMBER_WITH_UNIT.match(answer)) is not None and not _MATH_WORDS & set(m.group(2).lower().split()):
        answer = m.group(1)
    answer = mixed_numbers(answer)
    if python_syntax and looks_like_code(answer):
        answer = _code_to_latex(answer) or answer
    if answer.count("=") == 1:  # "5 = x", "2x + 3 = y", "\frac{q_0}{\sqrt{2LC}} = I_{\max}": the name first
        value, name = answer.split("=")
        if _NAME_ONLY.fullmatch(name) and not _NAME_ONLY.fullmatch(value) and value.strip() and not re.search(r"[<>]|\\[lg]e", value):
            answer = f"{name.strip()} = {value.strip()}"
    answer = _FONT_LETTER.sub(r"\1", answer)
    answer = _LIST_WORD.sub(", ", answer)
    return normalize_math(answer).strip()


# -- the policy -------------------------------------------------------------------------------------


def _candidates(region: str, policy: ExtractionPolicy) -> list[Candidate]:
    found: list[Candidate] = []
    for answer_format in policy.formats:
        if answer_format == "boxed":
            found += boxed_candidates(region, policy.join_boxed, policy.prefer_exact)
        elif answer_format == "hashes":
            found += hashes_candidates(region)
        elif answer_format == "answer_is":
            found += answer_is_candidates(region, policy.strict_code)
    return found


def _choose(found: list[Candidate], policy: ExtractionPolicy) -> Candidate | None:
    strong = [c for c in found if c.strong] or found
    if not strong:
        return None
    if policy.choose == "format_order":
        for answer_format in policy.formats:
            of_format = [c for c in strong if c.format == answer_format]
            if of_format:
                return max(of_format, key=lambda c: c.start)
    return max(strong, key=lambda c: c.start)


@dataclass(frozen=True)
class Extracted:
    """What a response states: its answer as written (None: none), the format that marked it
    (``boxed``, ``hashes``, ``answer_is``, ``answer_tag``, or ``final_line`` for an unmarked one) and the
    region it was searched in (the response proper, or the answer tag's content)."""

    raw: str | None
    format: str | None
    region: str

    @property
    def marked(self) -> bool:
        return self.format not in (None, "final_line")


def extract(text: str, policy: ExtractionPolicy) -> Extracted:
    """The final answer as written (before cleaning), with where it was found."""
    if policy.normalize_unicode:
        text = normalize_unicode(text)
    body = strip_reasoning(text)
    if body is None:
        return Extracted(None, None, "")
    region, tagged = body, False
    if "answer_tag" in policy.formats and (content := answer_tag_content(body)) is not None:
        region, tagged = content, True
    chosen = _choose(_candidates(region, policy), policy)
    if chosen is not None:
        return Extracted(chosen.text, chosen.format, region)
    if tagged:  # the tag's content is the answer, or its last line when it holds prose
        if bare_expression(region) or not _is_prose(region):
            return Extracted(region, "answer_tag", region)
        return Extracted(final_line_answer(region, policy.strict_code), "final_line", region)
    if "final_line" in policy.formats:
        return Extracted(final_line_answer(region, policy.strict_code), "final_line", region)
    return Extracted(None, None, region)


def raw_answer(text: str, policy: ExtractionPolicy) -> str | None:
    """The final answer as written (before cleaning), or None when the response states none."""
    return extract(text, policy).raw


def finish(raw: str | None, policy: ExtractionPolicy) -> str | None:
    """The cleaned answer of :func:`extract`'s ``raw`` (None when empty)."""
    if raw is None:
        return None
    if len(raw) > MAX_ANSWER_CHARS:
        return raw.strip()[:MAX_ANSWER_CHARS] or None
    return clean_answer(raw, policy.prefer_exact) or None


def extract_answer(text: str, policy: ExtractionPolicy | None = None) -> str | None:
    """The final answer stated in a response (cleaned), or None when it states none."""
    policy = policy or ExtractionPolicy()
    return finish(raw_answer(text, policy), policy)
