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
option letters (A–E when the problem lists none). When the response chooses no letter, its answer (or
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
_PROBLEM_OPTION = re.compile(r"(?:\\textbf\{\s*)?\(([A-J])\)\}?|(?:^|\n)\s*([A-J])[.)]\s")
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
    options: dict[str, str] = {}
    for marker, following in zip(markers, markers[1:] + [None]):
        letter = marker.group(1) or marker.group(2)
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
    plain = _plain(last)
    for letter, option_text in options.items():
        if plain and plain == option_text:
            return GoldChoice(letter, option_text)
    return None


def _letters(problem: str) -> str:
    return "".join(problem_options(problem)) if problem else DEFAULT_LETTERS


def _standalone_letters(text: str, allowed: str) -> list[str]:
    """The letters of ``allowed`` that stand alone in ``text`` and are not negated, in order."""
    out, negated_until = [], None
    for match in _LETTER.finditer(text):
        letter = match.group(1)
        if letter not in allowed:
            continue
        clause_start = max(text.rfind(sep, 0, match.start()) for sep in ".;!?\n")
        before = text[clause_start + 1 : match.start()]
        chained = negated_until is not None and _NEGATION_CHAIN.fullmatch(text[negated_until : match.start()]) is not None
        if chained or _NEGATION_BEFORE.search(before) or _NEGATION_AFTER.match(text[match.end() :]):
            negated_until = match.end()
            continue
        negated_until = None
        out.append(letter)
    return out


def chosen_letter(body: str, answer: str | None, marked: bool, problem: str = "") -> str | None:
    """The option letter a response chooses (module docstring), or None."""
    allowed = _letters(problem)
    options = problem_options(problem) if problem else {}
    if answer is not None:
        plain = _WRAPPER.sub(r"\1", answer).strip()
        form = _CHOICE_FORM.fullmatch(plain)
        if form is not None and form.group(1) in allowed:
            return form.group(1)
        folded = _plain(plain)
        for letter, text in options.items():
            if folded and folded == text:
                return letter
        if marked:
            letters = _standalone_letters(plain, allowed)
            return letters[0] if letters else None
    lines = [line for line in body[-MAX_LINE_CHARS:].strip().splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1][-MAX_LINE_CHARS:]
    if (leading := _LEADING_OPTION.match(last)) is not None and leading.group(1) in allowed:
        return leading.group(1)
    letters = _standalone_letters(last, allowed)
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
