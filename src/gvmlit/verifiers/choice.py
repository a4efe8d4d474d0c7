"""Multiple-choice answers: which option a response chooses, against a gold that names an option.

A gold names an option when it is a letter (``C``, ``(C)``, ``\\text{(C)}``), a letter with the option's
text (``(D) Alina``, ``C Cecile``), a solution ending in one ("… the answer is (C) Cecile"), or, when
the problem lists its options, one option's text (``Plane`` for "(C) Plane"). The options are read
from the problem: "(A) Line (B) Circle …", ``\\textbf{(A)}\\ …``, or lines "A. …" / "A) …".

The response chooses, in this order:

1. its marked answer (box, "the answer is", "Answer:"), when that is an option: a letter (``(C)``,
   ``C.``, ``\\text{C}``), an option's text (``\\boxed{\\text{Plane}}``) or value; else the first letter
   in it that is not negated ("for sure D, it can't be A or B" → D). A marked answer that names no
   option chooses nothing: no letter elsewhere in the response overrides it;
2. without a marked answer, the last line: a leading option (``A. because …``), else its last letter
   that is not negated ("not C", "C is incorrect"), so "It's not A …, therefore I think it's B" → B.

A letter counts only standing alone (not in "HbA1c", "E'", "$ABC$") and only among the problem's
option letters (A–E when the problem lists none). A lower-case letter names an option only where it
cannot be the word "a" or a variable: as the whole marked answer ("The answer is c", ``\\boxed{(c)}``,
"Answer: c) 12"), as the whole last line (``c``, ``(c)``), leading the last line with a parenthesis
(``c) because …``), or after "option" / "choice" ("Option c", "the correct choice is (c)"); and only
when the problem lists its options or is not given (a gold ``C`` in a problem without options may be a
point or a constant, which ``c`` is not). A problem may list its options in lower case ("(a) 12 (b)
15"); then a gold ``c`` or ``(c)`` names option C. When the response chooses no letter, its answer (or
its last line) may still be the option's text (a gold ``(D) Alina`` accepts ``Alina``); else the answer
is compared as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from gvmlit.records import Verdict

DEFAULT_LETTERS = "ABCDE"
#: the end of the response searched for a chosen letter (a runaway line must not cost a scan per letter)
MAX_LINE_CHARS = 1000

_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox|boxed)\s*\{([^{}]*)\}")
_OPTION_TEXT = r"[A-Za-z][A-Za-z' -]*"
#: a gold that names an option: "(C)", "C", "C. Plane", "(D) Alina", "C Cecile"
_GOLD_OPTION = re.compile(rf"\(?([A-J])\)?(?:(?:[.:)]\s*|\s+)({_OPTION_TEXT}))?")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*", re.IGNORECASE)
#: an option marker in a problem: "(A)", "\textbf{(A)}", or "A." / "A)" starting a line
_PROBLEM_OPTION = re.compile(r"(?:\\textbf\{\s*)?\(([A-J])\)\}?|(?:^|\n)\s*([A-J])[.):]\s")
#: the same in lower case, read only when the problem lists no upper-case options: "(a) 12 (b) 15"
#: ("f(a)" is no option: not after a letter); at least three, in order from (a)
_PROBLEM_OPTION_LOWER = re.compile(r"(?:\\textbf\{\s*)?(?<![A-Za-z0-9_\\])\(([a-j])\)\}?|(?:^|\n)\s*([a-j])[.):]\s")
_CHOICE_FORM = re.compile(r"\(?([A-J])\)?(?:[.:)]\s*.*)?", re.DOTALL)
_LETTER = re.compile(r"(?<![A-Za-z0-9'\\$_^{])\(?([A-J])\)?(?![A-Za-z0-9'$_^}])")
#: "not C", "can't be C", "isn't the answer C": a negation, a few short words, then the letter
_NEGATION_BEFORE = re.compile(
    r"(?:\bnot|n't|\bnever|\bexcept|\bneither|\bnor)(?:\s+(?:be|is|it|the|an?|option|answer|choice))*\s*(?:\(|\s|[*_])*$", re.IGNORECASE
)
#: what joins letters that one negation covers: "can't be A or B"
_NEGATION_CHAIN = re.compile(r"\)?\s*(?:,|\bor\b|\band\b|\bnor\b)?\s*\(?", re.IGNORECASE)
_NEGATION_AFTER = re.compile(r"^\)?\s*(?:is|are|was|seems)\s+(?:not\b|incorrect|wrong|false|unlikely|ruled\s+out)", re.IGNORECASE)
_LEADING_OPTION = re.compile(r"^[\s>*_#`~+\-\d.]*\(?([A-J])\)?[*_`]*[.:)]")
#: a lower-case option, only in forms that no word takes: the whole answer ("c", "(c)", "c)", "c. 12",
#: "option c"), and a leading "(c)" / "c)"
_LOWER_CHOICE = re.compile(r"(?:(?:option|choice)\s*)?\(?([a-j])\)?(?:[.:)](?:\s+.*)?)?", re.IGNORECASE | re.DOTALL)
_LOWER_LINE = re.compile(r"[\s>*_#`]*\(?([a-j])\)?[*_`]*\.?\s*")
_LEADING_LOWER = re.compile(r"^[\s>*_#`~+\-]*(?:\(([a-j])\)|([a-j])\))(?=\s|$)")
#: an option named by a keyword, in either case: "option c", "Choice (B)"; and a letter that ends its
#: clause after "the (best) option / choice / answer … is", "I choose", "go with" ("the answer is a."
#: and "the best option here is d", but not "the answer is a bit …" nor "I'd go with a different one")
_KEYWORD_LETTER = re.compile(
    r"\b(?:(?:option|choice)\s*[:#]?\s*\(?([a-jA-J])\)?"
    r"|(?:(?:option|choice|answer)\b[^.;!?\n]{0,30}?\b(?:is|was|would\s+be|will\s+be|should\s+be)\s*:?"
    r"(?:\s*(?:clearly|obviously|definitely|surely|probably|likely|therefore|thus))?"
    r"|\b(?:choose|chose|pick|picked|select|selected|go\s+with|going\s+with))\s*\(?([a-jA-J])\)?(?=\s*(?:$|[.,;:!?*)\]])))"
    r"(?![A-Za-z0-9'$_^}\\])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class GoldChoice:
    letter: str
    text: str | None  # the option's text, when the gold or the problem gives it


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", _WRAPPER.sub(r"\1", text.replace("$", ""))).strip().rstrip(".").strip().casefold()


@lru_cache(maxsize=4096)
def problem_options(problem: str) -> dict[str, str]:
    """The options a problem lists, letter → text (plain, case-folded); empty when it lists fewer than 2."""
    markers = list(_PROBLEM_OPTION.finditer(problem))
    if len(markers) < 2:
        markers = list(_PROBLEM_OPTION_LOWER.finditer(problem))
        if "".join(m.group(1) or m.group(2) for m in markers)[:3] != "abc":
            return {}
    options: dict[str, str] = {}
    for marker, following in zip(markers, markers[1:] + [None]):
        letter = (marker.group(1) or marker.group(2)).upper()
        end = following.start() if following is not None else min(len(problem), marker.end() + 200)
        text = problem[marker.end() : end]
        text = re.split(r"\n\s*\n|Enter the letter|Enter your answer", text)[0]
        text = re.sub(r"\\q?quad|\\ |\\,", " ", text)
        options.setdefault(letter, _plain(text))
    letters = sorted(options)
    if len(letters) < 2 or letters[0] != "A":
        return {}
    return options


@lru_cache(maxsize=4096)
def gold_choice(gold: str, problem: str = "") -> GoldChoice | None:
    """The option a gold names (module docstring), or None when it names none."""
    text = gold.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    last = _WRAPPER.sub(r"\1", lines[-1]).replace("$", "").strip().rstrip(".")
    if (answer_is := list(_ANSWER_IS.finditer(last))):
        last = last[answer_is[-1].end() :]
    elif len(lines) > 1 and not _ANSWER_IS.search(lines[-2]):
        return None
    options = problem_options(problem) if problem else {}
    match = _GOLD_OPTION.fullmatch(last.strip())
    if match is not None and (not options or match.group(1) in options):
        letter = match.group(1)
        option_text = match.group(2) or options.get(letter)
        return GoldChoice(letter, option_text.strip().casefold() if option_text else None)
    lower = re.fullmatch(r"\(?([a-j])\)?", last.strip())
    if lower is not None and lower.group(1).upper() in options:  # "c" where the problem lists (a) … (e)
        return GoldChoice(lower.group(1).upper(), options[lower.group(1).upper()])
    plain = _plain(last)
    for letter, option_text in options.items():
        if plain and plain == option_text:
            return GoldChoice(letter, option_text)
    return None


def _letters(problem: str) -> str:
    return "".join(problem_options(problem)) if problem else DEFAULT_LETTERS


def _standalone_letters(text: str, allowed: str, lowercase: bool = False) -> list[str]:
    """The letters of ``allowed`` that stand alone in ``text`` and are not negated, in order; with
    ``lowercase``, also a lower-case letter that a keyword names ("option c")."""
    found = [(m.start(), m.end(), m.group(1)) for m in _LETTER.finditer(text)]
    if lowercase and re.search(r"ption|hoice|nswer|choose|chose|pick|select|go(?:ing)? with", text, re.IGNORECASE):
        taken = {start for start, _, _ in found}
        for m in _KEYWORD_LETTER.finditer(text):
            group = 1 if m.group(1) is not None else 2
            start = m.start(group) - (text[m.start(group) - 1] == "(")
            if start not in taken and m.start(group) not in taken:
                found.append((start, m.end(), m.group(group).upper()))
        found.sort()
    out, negated_until = [], None
    for start, end, letter in found:
        if letter not in allowed:
            continue
        clause_start = max(text.rfind(sep, 0, start) for sep in ".;!?\n")
        before = text[clause_start + 1 : start]
        chained = negated_until is not None and _NEGATION_CHAIN.fullmatch(text[negated_until:start]) is not None
        if chained or _NEGATION_BEFORE.search(before) or _NEGATION_AFTER.match(text[end:]):
            negated_until = end
            continue
        negated_until = None
        out.append(letter)
    return out


def chosen_letter(body: str, answer: str | None, marked: bool, problem: str = "") -> str | None:
    """The option letter a response chooses (module docstring), or None."""
    allowed = _letters(problem)
    options = problem_options(problem) if problem else {}
    lowercase = not problem or bool(options)  # where a lower-case letter may name an option
    lines = [line for line in body[-MAX_LINE_CHARS:].strip().splitlines() if line.strip()]
    last = lines[-1][-MAX_LINE_CHARS:] if lines else ""
    if answer is not None:
        plain = _WRAPPER.sub(r"\1", answer).strip()
        form = _CHOICE_FORM.fullmatch(plain)
        if form is not None and form.group(1) in allowed:
            return form.group(1)
        if lowercase and (marked or _LOWER_LINE.fullmatch(_WRAPPER.sub(r"\1", last))) and (lower := _LOWER_CHOICE.fullmatch(plain)) is not None:
            if lower.group(1).upper() in allowed:  # "The answer is c", "\boxed{(c)}", a last line "c)"
                return lower.group(1).upper()
        folded = _plain(plain)
        for letter, text in options.items():
            if folded and folded == text:
                return letter
        if marked:
            letters = _standalone_letters(plain, allowed, lowercase)
            return letters[0] if letters else None
    if not lines:
        return None
    if (leading := _LEADING_OPTION.match(last)) is not None and leading.group(1) in allowed:
        return leading.group(1)
    if lowercase and (leading := _LEADING_LOWER.match(last)) is not None:
        letter = (leading.group(1) or leading.group(2)).upper()
        if letter in allowed and not _NEGATION_AFTER.match(last[leading.end() :]):
            return letter
    letters = _standalone_letters(last, allowed, lowercase)
    return letters[-1] if letters else None


def choice_verdict(body: str, answer: str | None, marked: bool, gold: str, problem: str = "") -> Verdict | None:
    """The verdict on a multiple-choice gold, or None when the gold names no option or the response
    chooses none (then the answer is compared as usual)."""
    choice = gold_choice(gold, problem)
    if choice is None:
        return None
    letter = chosen_letter(body, answer, marked, problem)
    if letter is not None:
        return Verdict(1.0, "correct") if letter == choice.letter else Verdict(0.0, "wrong")
    if choice.text is not None:
        lines = [line for line in body[-MAX_LINE_CHARS:].strip().splitlines() if line.strip()]
        stated = answer if answer is not None else lines[-1] if lines else ""
        if _plain(stated) == choice.text:  # the option's text instead of its letter: "Alina" for "(D) Alina"
            return Verdict(1.0, "correct")
    return None
