"""Is an extracted answer equal to the gold? Lenient on form, strict on value (docs/verifier.md).

Order of the checks:

1. **Quick checks** in pure Python (no sympy; they also run in the parent, before any worker is asked):
   two plain numbers or fractions (``-\\frac{7}{2}``, ``13/4``), text answers (``ellipse`` vs
   ``\\text{Ellipse}``, ``E`` vs ``E'``), a choice letter (gold ``C``, answer ``C. x = 42``), a decimal
   comma (``1,22`` vs ``1.22``).
2. **math-verify** (sympy) on both sides: expressions compared symbolically, and sets, intervals,
   tuples, matrices, equations and units as math-verify compares them;
3. **numeric check**, when math-verify says no and both sides are expressions with the same variables
   that sympy may fail to simplify (trigonometric, exponential, complex): equal values at a few random
   points (``\\sqrt{2}\\cos(2t - \\pi/4)`` = ``\\cos 2t + \\sin 2t``); equations are equal when one
   is a constant multiple of the other (``2 = x`` and ``x - 2 = 0``). A lone ``i`` is read as the
   imaginary unit there (``4e^{2\\pi i/3}`` = ``-2 + 2\\sqrt{3} i``).

**Named quantities**: a side that names its quantity (``I_{\\max} = V``, ``\\Delta p \\approx V``,
``x_1 = 3``, ``f(2) = 5``; :func:`~gvmlit.verifiers.normalize.named_quantity`) against a side that is a
value, not a relation, is judged on ``V``; two sides that name the same quantity (``I_{\\max}`` and
``I_{max}``) on their values; other names are compared as equations (``x = 5`` is not ``y = 5``).
A list of differently named quantities (``a = 3, b = 4``) against as many bare values takes them in
order (``3, 4``, not ``4, 3``). **Two numbers side by side** (``4 4``, ``12 34``) state no value
(``unparseable_answer``): 44, 16 and math-verify's 4 + 4 are all guesses. **LaTeX that does not parse**
(with a backslash) is no value: math-verify's fallback to a plain number inside it (``v_{\\max} = 2gh``
read as 2) is not used; an equation whose left side does not parse (``17 \\bmod 5 = 2``) is read by its
right-hand side, as math-verify reads an equation against a gold that is none.

**Percentages** (one policy, both ways): a percentage ``P\\%`` (however spelled, see
:func:`~gvmlit.verifiers.normalize.percent_body`) equals another percentage when the numbers of
percent are equal, and a plain value when that value is ``P`` (the benchmarks' keys write a percentage
answer as its number: MATH-500 "express your answer as a percentage, but do not include the percent
sign" → ``10``) or ``P/100`` (its value: ``62.5\\%`` = ``\\frac{5}{8}``). Without a percent sign on
either side there is no percentage: ``0.1`` ≠ ``10``.

Numbers are compared at the precision the answer gives, not at a fixed number of digits: a decimal
equals an exact value (``\\frac{8}{3}``, ``\\sqrt{17}``) or a more precise decimal when it is that value
correctly rounded to every digit it states *and* it states at least ``min_significant_digits``
significant digits (``2.6667`` = 8/3; ``0.333`` ≠ 1/3 with the default 4; ``3.1428571000`` ≠ 22/7, since
its eighth decimal is wrong). Otherwise decimals must be equal as numbers (``0.5`` = 1/2, ``27.0`` = 27).
Inside math-verify this is done by *snapping*: a decimal that correctly rounds a number of the other
side is replaced by that number before the comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache

from gvmlit.records import Verdict
from gvmlit.verifiers.normalize import juxtaposed_numbers, name_key, named_quantity, percent_body

#: decimals at which math-verify compares the decimals that were not snapped: exact for practical purposes
EXACT_DECIMALS = 12
#: numeric sub-expressions of the other side considered when snapping (bounds the work on huge answers)
MAX_SNAP_CANDIDATES = 200

CORRECT = Verdict(1.0, "correct")
WRONG = Verdict(0.0, "wrong")


@dataclass(frozen=True)
class EquivalenceSettings:
    """Args:
    min_significant_digits: fewest significant digits a decimal must state to count as a rounding of
        an exact value.
    gold_is_text: compare as text only (``gold_format="text"``).
    """

    min_significant_digits: int = 4
    gold_is_text: bool = False


# -- plain numbers ----------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")


def plain_number(text: str) -> Decimal | None:
    """The value of a plain decimal numeral (``-12``, ``0.50``, ``.5``), keeping its stated precision."""
    if _PLAIN_NUMBER.fullmatch(text) is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


_FRACTION = re.compile(r"(-?)(?:\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}|\\[dt]?frac(\d)(\d)|(\d+)\s*/\s*(\d+))")


def plain_rational(text: str) -> Fraction | Decimal | None:
    """A numeral the quick check can compare without sympy: a decimal (a ``Decimal``, keeping its stated
    precision) or an exact fraction (``3``, ``-\\frac{7}{2}``, ``\\frac34``, ``13/4``)."""
    number = plain_number(text)
    if number is not None:
        return Fraction(int(number)) if number == number.to_integral_value() and "." not in text else number
    match = _FRACTION.fullmatch(text.strip())
    if match is None:
        return None
    sign, *parts = match.groups()
    numerator, denominator = next((int(a), int(b)) for a, b in zip(parts[::2], parts[1::2]) if a is not None)
    if denominator == 0:
        return None
    return Fraction(-numerator if sign else numerator, denominator)


def rationals_match(gold: Fraction | Decimal, answer: Fraction | Decimal, min_significant_digits: int) -> bool:
    """Exact values equal, or a decimal that correctly rounds the other side (the rule of numbers_match)."""
    if isinstance(gold, Decimal) and isinstance(answer, Decimal):
        return numbers_match(gold, answer, min_significant_digits)
    if isinstance(gold, Fraction) and isinstance(answer, Fraction):
        return gold == answer
    decimal, exact = (gold, answer) if isinstance(gold, Decimal) else (answer, gold)
    if Fraction(decimal) == exact:
        return True
    value = Decimal(exact.numerator) / Decimal(exact.denominator)
    return rounds_to(decimal, value, min_significant_digits)


def significant_digits(value: Decimal) -> int:
    digits = "".join(map(str, value.as_tuple().digits)).lstrip("0")
    return max(1, len(digits))


def rounds_to(approximation: Decimal, value: Decimal, min_significant_digits: int) -> bool:
    """Whether ``approximation`` is ``value`` correctly rounded to the last digit it states, and states
    at least ``min_significant_digits`` significant digits."""
    exponent = approximation.as_tuple().exponent
    if not isinstance(exponent, int) or significant_digits(approximation) < min_significant_digits:
        return False
    half_unit = Decimal(5).scaleb(exponent - 1)
    return abs(value - approximation) <= half_unit


def numbers_match(gold: Decimal, answer: Decimal, min_significant_digits: int) -> bool:
    """Equal values, or the less precise one is a correct rounding of the other (an integer is exact)."""
    if gold == answer:
        return True
    gold_exponent, answer_exponent = gold.as_tuple().exponent, answer.as_tuple().exponent
    approximation, value = (gold, answer) if gold_exponent > answer_exponent else (answer, gold)
    if approximation.as_tuple().exponent >= 0:
        return False
    return rounds_to(approximation, value, min_significant_digits)


# -- text answers and choice letters ----------------------------------------------------------------

_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|mathcal|operatorname|emph)\s*\{([^{}]*)\}")
#: words (letters, primes), no operators: "x - y" and "p-q" are math
_TEXT_ANSWER = re.compile(r"[A-Za-z]+'*(?: [A-Za-z]+'*)*")
_CHOICE_GOLD = re.compile(r"[A-E]")
#: a choice letter, alone or leading its option: "C", "(C)", "C. x = 42", "\\textbf{(C)}\\ 12"
_CHOICE_ANSWER = re.compile(r"\(([A-E])\).*|([A-E])(?:[.:)]\s.*)?", re.DOTALL)


def as_text(answer: str) -> str | None:
    """The words of a text answer (``\\text{Ellipse}`` → ``ellipse``, ``E'`` → ``E'``), None for math."""
    text = _TEXT_COMMAND.sub(r"\1", answer).strip()
    text = re.sub(r"^\(([A-Za-z])\)$", r"\1", text)
    if _TEXT_ANSWER.fullmatch(text) is None:
        return None
    text = re.sub(r"\s+", " ", text)
    # a single letter (a variable, a choice) keeps its case; words do not
    return text if len(text.replace("'", "")) == 1 else text.casefold()


def _hundredth(body: str) -> str:
    """A percentage's value, ``P/100``, written at the precision ``P`` states (``17.5`` → ``0.175``)."""
    number = plain_rational(body)
    if isinstance(number, Decimal):
        return str(number.scaleb(-2))
    if isinstance(number, Fraction):
        return rf"\frac{{{number.numerator}}}{{{number.denominator * 100}}}"
    return rf"\frac{{{body}}}{{100}}"


def percent_readings(answer: str, gold: str) -> list[tuple[str, str]] | None:
    """The (answer, gold) pairs to compare when a side is a percentage (module docstring), else None:
    two percentages by their numbers of percent; one against a plain value as ``P`` and as ``P/100``."""
    gold_body, answer_body = percent_body(gold), percent_body(answer)
    if gold_body is None and answer_body is None:
        return None
    if gold_body is not None and answer_body is not None:
        return [(answer_body, gold_body)]
    if gold_body is not None:
        return [(answer, gold_body), (answer, _hundredth(gold_body))]
    return [(answer_body, gold), (_hundredth(answer_body), gold)]


UNPARSEABLE = Verdict(0.0, "unparseable_answer")
#: a relation: a side that holds one is no bare value
_RELATION_TEXT = re.compile(r"=|<|>|\\(?:le|ge|leq|geq|lt|gt|ne|neq|approx|simeq|in|equiv|doteq)(?![A-Za-z])")


def _top_level_parts(text: str) -> list[str]:
    """``text`` split at its commas and semicolons outside brackets and braces."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char in ",;" and depth == 0 and not text[i - 1 : i] == "\\":
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def named_reading(answer: str, gold: str) -> tuple[str, str] | None:
    """The (answer, gold) values to compare when a side names its quantity (``I_{\\max} = V`` against
    ``V``), else None. Both sides named: their values, when the names are the same (``I_{\\max}`` and
    ``I_{max}``); different names are left to the equation comparison (``x = 2`` is not ``y = 2``)."""
    if "=" not in answer and "=" not in gold and "approx" not in answer + gold and "eq" not in answer + gold:
        return None
    named_answer, named_gold = named_quantity(answer), named_quantity(gold)
    if named_answer is not None and named_gold is not None:
        return (named_answer[1], named_gold[1]) if name_key(named_answer[0]) == name_key(named_gold[0]) else None
    if named_answer is not None and not _RELATION_TEXT.search(gold):
        return named_answer[1], gold
    if named_gold is not None and not _RELATION_TEXT.search(answer):
        return answer, named_gold[1]
    return None


def named_list_readings(answer: str, gold: str) -> tuple[list[tuple[str, str]], bool] | None:
    """The (answer, gold) pairs of a list of named quantities (``y_1 = A, y_2 = B``) against the same
    number of values without names (``A, B``), in order, and whether that order decides: it does for
    different names (``a = 3, b = 4`` is not ``4, 3``), not for one name indexed (``x_1 = 2, x_2 = 3``
    may be roots in either order: the set comparison decides). None when the sides are not such lists."""
    if "=" not in answer and "=" not in gold:
        return None
    named, plain, gold_named = (gold, answer, True) if gold.count("=") >= 2 else (answer, gold, False)
    if named.count("=") < 2 or _RELATION_TEXT.search(plain):
        return None
    pairs = [named_quantity(part) for part in _top_level_parts(named)]
    values = _top_level_parts(plain)
    if len(pairs) != len(values) or None in pairs:
        return None
    keys = [name_key(name) for name, _ in pairs]
    if len(set(keys)) != len(keys):
        return None  # "x = 2, x = -2" (one name) is a solution set: the set comparison decides
    indexed = len({key.split("_")[0] for key in keys}) == 1 and all("_" in key for key in keys)
    readings = [(value, pair[1]) if gold_named else (pair[1], value) for pair, value in zip(pairs, values)]
    return readings, not indexed


def quick_verdict(answer: str, gold: str, settings: EquivalenceSettings) -> Verdict | None:
    """The verdict when it needs no sympy (module docstring, step 1), else None."""
    if settings.gold_is_text:
        return _quick(answer, gold, settings)
    if juxtaposed_numbers(answer):
        return UNPARSEABLE  # "4 4": neither 44 nor 16 nor 8
    if (reading := named_reading(answer, gold)) is not None:
        answer, gold = reading
    elif (listed := named_list_readings(answer, gold)) is not None:
        verdicts = [quick_verdict(a, g, settings) for a, g in listed[0]]
        if all(v == CORRECT for v in verdicts):
            return CORRECT
        if listed[1] and any(v is not None and v != CORRECT for v in verdicts):
            return WRONG  # "4, 3" for "a = 3, b = 4"
    if (readings := percent_readings(answer, gold)) is not None:
        verdicts = [_quick(a, g, settings) for a, g in readings]
        if CORRECT in verdicts:
            return CORRECT
        return WRONG if all(v == WRONG for v in verdicts) else None
    return _quick(answer, gold, settings)


def _quick(answer: str, gold: str, settings: EquivalenceSettings) -> Verdict | None:
    gold_text, answer_text = as_text(gold), as_text(answer)
    if settings.gold_is_text:
        same = (gold_text or re.sub(r"\s+", "", gold).casefold()) == (answer_text or re.sub(r"\s+", "", answer).casefold())
        return CORRECT if same else WRONG
    gold_number, answer_number = plain_rational(gold), plain_rational(answer)
    if gold_number is not None and answer_number is not None:
        return CORRECT if rationals_match(gold_number, answer_number, settings.min_significant_digits) else WRONG
    gold_number = gold_number if isinstance(gold_number, Decimal) else None
    answer_number = answer_number if isinstance(answer_number, Decimal) else None
    for letter, other in ((gold_text, answer), (answer_text, gold)):  # a choice letter, either side
        if letter is not None and _CHOICE_GOLD.fullmatch(letter):
            choice = _CHOICE_ANSWER.fullmatch(_TEXT_COMMAND.sub(r"\1", other).strip())
            if choice is not None:
                return CORRECT if (choice.group(1) or choice.group(2)) == letter else WRONG
    if gold_text is not None and answer_text is not None:
        return CORRECT if gold_text == answer_text else WRONG
    if "'" in (gold_text or "") + (answer_text or ""):
        return WRONG  # E' is not E, and a primed name is no number
    for comma, other in ((gold, answer_number), (answer, gold_number)):
        if other is not None and _DECIMAL_COMMA.fullmatch(comma):  # "1,22" is 1.22 where a decimal is expected
            if numbers_match(Decimal(comma.replace(",", ".")), other, settings.min_significant_digits):
                return CORRECT
    return None


# -- math-verify with snapping ----------------------------------------------------------------------

_DECIMAL_LITERAL = re.compile(r"(?<![\d.])(\d*\.\d+)")


def decimal_literals(latex: str) -> list[Decimal]:
    """Every decimal numeral written in ``latex``, with its stated precision."""
    return [Decimal(m.group(1)) for m in _DECIMAL_LITERAL.finditer(latex)]


def _nodes(expr) -> list:
    """Sub-expressions of a parsed answer (matrices element by element), at most MAX_SNAP_CANDIDATES."""
    from sympy import Basic, MatrixBase, preorder_traversal

    roots = list(expr) if isinstance(expr, MatrixBase) else [expr]
    out = []
    for root in roots:
        if not isinstance(root, Basic):
            continue
        for node in preorder_traversal(root):
            out.append(node)
            if len(out) >= MAX_SNAP_CANDIDATES:
                return out
    return out


def _numeric_values(expr) -> list[tuple[object, Decimal]]:
    """(sub-expression, value) for the real numeric sub-expressions of ``expr``."""
    out = []
    for node in _nodes(expr):
        if not getattr(node, "is_number", False) or getattr(node, "is_Relational", False):
            continue
        try:
            value = node.evalf(30)
            if not value.is_real or not value.is_finite:
                continue
            out.append((node, Decimal(str(value))))
        except (TypeError, ValueError, ArithmeticError, InvalidOperation, AttributeError):
            continue
    return out


def snap(expr, text: str, other, min_significant_digits: int):
    """``expr`` with each decimal written in ``text`` replaced by an exact number: by the number of
    ``other`` that it correctly rounds (at its stated precision), else by its own exact value
    (``0.5`` → 1/2, so that ``2^{0.5}`` is ``\\sqrt{2}`` and ``0.333`` stays 333/1000)."""
    from sympy import Float, Rational

    literals = decimal_literals(text)
    if not literals or not hasattr(expr, "atoms"):
        return expr
    floats = expr.atoms(Float)
    if not floats:
        return expr
    values = None
    replacements = {}
    for number in floats:
        stated = Decimal(str(abs(number)))
        literal = next((lit for lit in literals if abs(lit - stated) <= abs(lit) * Decimal("1e-12")), None)
        if literal is None:
            continue  # computed by the parser, not written: leave it to math-verify's float comparison
        signed = literal if number >= 0 else -literal
        if values is None:
            values = _numeric_values(other)
        match = next((node for node, value in values if rounds_to(signed, value, min_significant_digits)), None)
        replacements[number] = match if match is not None else Rational(str(signed))
    return expr.xreplace(replacements)


def _snap_both(gold_parsed: list, gold: str, pred_parsed: list, answer: str, min_digits: int) -> tuple[list, list]:
    """Snap the answer's decimals to the gold's numbers and the gold's decimals to the answer's."""
    gold_expr = next((g for g in gold_parsed if not isinstance(g, str)), None)
    pred_expr = next((p for p in pred_parsed if not isinstance(p, str)), None)
    if gold_expr is None or pred_expr is None:
        return gold_parsed, pred_parsed
    new_pred = snap(pred_expr, answer, gold_expr, min_digits)
    new_gold = snap(gold_expr, gold, pred_expr, min_digits)
    swap = {id(pred_expr): new_pred, id(gold_expr): new_gold}
    return [swap.get(id(g), g) for g in gold_parsed], [swap.get(id(p), p) for p in pred_parsed]


# -- the numeric check -------------------------------------------------------------------------------

#: random points at which two expressions are compared, and the agreement required there
NUMERIC_POINTS = 3
NUMERIC_TOLERANCE = 1e-12
#: expressions larger than this (operations) are not evaluated: the check must stay cheap
MAX_NUMERIC_OPS = 80


def _worth_evaluating(expr) -> bool:
    """An expression sympy may fail to simplify: a function (trigonometric, exponential, logarithm), a
    constant (``e``, ``π``) or an imaginary unit; plain algebra math-verify has compared already."""
    from sympy import E, Function, I, pi

    return bool(expr.atoms(Function)) or expr.has(I, E, pi) or any(symbol.name == "i" for symbol in expr.free_symbols)


def _evaluable(expr) -> bool:
    """Small enough to evaluate, with no power whose exponent could explode (``10^{10^{10}}``), and
    analytic: ``\\lfloor x \\rfloor`` and ``|x|`` agree with other functions on whole intervals, so a few
    points prove nothing about them."""
    from sympy import Abs, Max, Min, Mod, Pow, ceiling, floor, frac, sign
    from sympy.functions.elementary.piecewise import Piecewise

    if expr.count_ops() > MAX_NUMERIC_OPS or expr.has(floor, ceiling, Abs, sign, Piecewise, Max, Min, Mod, frac):
        return False
    for power in expr.atoms(Pow):
        exponent = power.exp
        if exponent.has(Pow) or (exponent.is_number and abs(exponent.evalf(5)) > 64):
            return False
    return True


def _imaginary_unit(expr):
    """``expr`` with a lone symbol ``i`` read as the imaginary unit."""
    from sympy import I

    unit = {symbol: I for symbol in expr.free_symbols if symbol.name == "i"}  # any assumptions the parser gave it
    return expr.xreplace(unit) if unit else expr


def numerically_equal(gold_parsed: list, pred_parsed: list) -> bool:
    """Step 3 of the module docstring: the first parsed expression of each side, compared by value at
    ``NUMERIC_POINTS`` random points (equations: one a constant multiple of the other)."""
    from sympy import Basic, Eq, Expr

    gold = next((g for g in gold_parsed if isinstance(g, Basic)), None)
    pred = next((p for p in pred_parsed if isinstance(p, Basic)), None)
    if gold is None or pred is None:
        return False
    if isinstance(gold, Eq) and isinstance(pred, Eq):
        if not all(isinstance(side, Expr) for side in (gold.lhs, gold.rhs, pred.lhs, pred.rhs)):
            return False
        gold, pred, ratio = gold.lhs - gold.rhs, pred.lhs - pred.rhs, True
    elif isinstance(gold, Expr) and isinstance(pred, Expr):
        ratio = False
        if not (_worth_evaluating(gold) or _worth_evaluating(pred)):
            return False  # math-verify already compared them symbolically; nothing a number would add
    else:
        return False
    gold, pred = _imaginary_unit(gold), _imaginary_unit(pred)
    symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
    if gold.free_symbols != pred.free_symbols or len(symbols) > 4:
        return False
    if not (_evaluable(gold) and _evaluable(pred)):
        return False
    return _agree(gold, pred, symbols, ratio)


def _agree(gold, pred, symbols: list, ratio: bool) -> bool:
    """Equal values (or, with ``ratio``, a constant non-zero ratio) at ``NUMERIC_POINTS`` points drawn
    from [0.3, 1.7] for every variable: positive, away from 0 and from the branch cuts of roots and
    logarithms, and irrational, so that two different analytic expressions agree there by coincidence
    only with probability 0."""
    import random

    rng = random.Random(0)
    quotients = []
    for _ in range(NUMERIC_POINTS if symbols else 1):
        point = {s: rng.uniform(0.3, 1.7) for s in symbols}
        try:
            a, b = complex(gold.evalf(20, subs=point)), complex(pred.evalf(20, subs=point))
        except (TypeError, ValueError, ArithmeticError, AttributeError):
            return False
        if not all(map(_finite, (a, b))):
            return False
        if ratio:
            if abs(b) < NUMERIC_TOLERANCE:
                if abs(a) > NUMERIC_TOLERANCE:
                    return False
                continue
            quotients.append(a / b)
        elif abs(a - b) > NUMERIC_TOLERANCE * max(1.0, abs(a)):
            return False
    if ratio:
        return bool(quotients) and abs(quotients[0]) > NUMERIC_TOLERANCE and all(
            abs(q - quotients[0]) <= NUMERIC_TOLERANCE * max(1.0, abs(quotients[0])) for q in quotients
        )
    return True


def _finite(value: complex) -> bool:
    return value == value and abs(value) != float("inf")


@lru_cache(maxsize=4096)
def parse_latex(latex: str, timeout: int | None) -> tuple:
    """math-verify's parse of one answer written as LaTeX (empty when it does not parse). Cached: a
    gold is compared with many responses, and sympy objects are immutable."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    if "\\" not in latex:
        return tuple(parse(f"${latex}$", [LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=timeout))
    # LaTeX that does not parse is no value: math-verify's plain-expression fallback would read a number
    # inside it (``v_{\\max} = 2gh`` as 2, ``\\hbar\\omega(v + 1/2) - …`` as 2): a wrong answer accepted
    return tuple(parse(f"${latex}$", [LatexExtractionConfig()], parsing_timeout=timeout))


def judge(answer: str, gold: str, settings: EquivalenceSettings, timeout: int | None = None) -> Verdict:
    """The verdict on one extracted, cleaned answer against a prepared gold (both non-empty).

    ``timeout`` is math-verify's own (signal-based, wall-clock) limit, for scoring in-process; worker
    processes pass None and rely on the pool's hard limit.
    """
    quick = quick_verdict(answer, gold, settings)
    if quick is not None:
        return quick
    if (reading := named_reading(answer, gold)) is not None:
        answer, gold = reading
    elif (listed := named_list_readings(answer, gold)) is not None:
        if all(judge(a, g, settings, timeout) == CORRECT for a, g in listed[0]):
            return CORRECT
        if listed[1]:
            return WRONG
    if (readings := percent_readings(answer, gold)) is not None:
        verdicts = [_judge(a, g, settings, timeout) for a, g in readings]
        return CORRECT if CORRECT in verdicts else next((v for v in verdicts if v.outcome != "wrong"), WRONG)
    return _judge(answer, gold, settings, timeout)


def _judge(answer: str, gold: str, settings: EquivalenceSettings, timeout: int | None) -> Verdict:
    """:func:`judge` without the percentage readings."""
    from math_verify import verify
    from sympy import Basic

    quick = _quick(answer, gold, settings)
    if quick is not None:
        return quick
    gold_parsed = list(parse_latex(gold, timeout))
    if not gold_parsed:
        return Verdict(0.0, "invalid_gold")
    pred_parsed = list(parse_latex(answer, timeout))
    if not any(isinstance(p, Basic) for p in pred_parsed) and "=" in answer:
        # "17 \\bmod 5 = 2": a computation that does not parse, then its value (as math-verify reads an
        # equation against a gold that is none: by its right-hand side)
        value = answer.rsplit("=", 1)[1].strip()
        if value and not _RELATION_TEXT.search(value) and not _RELATION_TEXT.search(gold):
            pred_parsed = list(parse_latex(value, timeout))
    if not pred_parsed:
        return Verdict(0.0, "unparseable_answer")
    gold_parsed, pred_parsed = _snap_both(gold_parsed, gold, pred_parsed, answer, settings.min_significant_digits)
    # allow_set_relation_comp: "-2 \le x \le 7" states the set [-2, 7] as much as "x \in [-2, 7]" does
    same = verify(
        gold_parsed, pred_parsed, float_rounding=EXACT_DECIMALS, allow_set_relation_comp=True, timeout_seconds=timeout
    )
    if not same:
        same = numerically_equal(gold_parsed, pred_parsed)
    return CORRECT if same else WRONG
