"""Equivalence: lenient on form, strict on value; golds in LaTeX, SymPy syntax or text (math-verify runs for real).

``tests/fixtures/verifier_benchmark_cases.jsonl`` is built from the benchmark files (MATH-500, Minerva,
OlympiadBench, AIME 24, AMC 23; every k-th problem): each gold written the ways models write answers
(boxed, in answer tags, after "the answer is therefore", on a bare final line, with unicode minus signs
and no-break spaces), against another problem's gold, in an answer tag while the gold is mentioned
outside it, and golds printed in SymPy syntax by sympy itself. ``source`` names the problem.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

from gvmlit.records import PromptRecord
from gvmlit.verifiers import MathVerifier, prepare_gold
from gvmlit.verifiers.equivalence import numbers_match
from helpers import ROOT

DATA = ROOT / "tests" / "fixtures"
BENCHMARK_CASES = [json.loads(line) for line in (DATA / "verifier_benchmark_cases.jsonl").read_text(encoding="utf-8").splitlines()]
VERIFIER = MathVerifier(workers=0, progress=False)


def verdict(response: str, gold: str, verifier: MathVerifier = VERIFIER):
    return verifier.score_one(response, PromptRecord("case", "", gold))


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        # numbers at the precision the answer states (at least 4 significant digits to approximate)
        (r"\boxed{2.6667}", r"\frac{8}{3}", 1.0),
        (r"\boxed{(0.6, 2.6667]}", r"(\frac{3}{5}, \frac{8}{3}]", 1.0),
        (r"\boxed{0.0666668}", "0.066666793", 1.0),
        (r"\boxed{0.3333333333}", r"\frac{1}{3}", 1.0),
        (r"\boxed{1.414}", r"\sqrt{2}", 1.0),
        (r"\boxed{\sqrt{17}}", "4.123105625617661", 1.0),
        (r"\boxed{0.333}", r"\frac{1}{3}", 0.0),  # 3 significant digits: too few to stand for 1/3
        (r"\boxed{3.1428571000}", r"\frac{22}{7}", 0.0),  # states ten digits, the eighth is wrong
        (r"\boxed{0.3333333334}", r"\frac{1}{3}", 0.0),
        (r"\boxed{3.14}", r"\pi", 0.0),
        (r"\boxed{2.23}", "2.232", 0.0),
        (r"\boxed{5.001}", "5", 0.0),
        (r"\boxed{999.9999999}", "1000", 0.0),
        (r"\boxed{27}", "27.0", 1.0),
        (r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
        (r"\boxed{2^{0.5}}", r"\sqrt{2}", 1.0),
        (r"\boxed{6.5e-2}", "0.065", 1.0),
        (r"\boxed{3e8}", "300000000", 1.0),
        # a value the parser would shorten is not another value
        (r"\boxed{4343_0}", "4343.0", 0.0),
        (r"\boxed{4343}", "4343_6", 0.0),
        (r"\boxed{999}", "4343_6", 1.0),
        (r"\boxed{4\sqrt(2)}", "4", 0.0),
        (r"\boxed{4\sqrt(2)}", r"4\sqrt{2}", 1.0),
        (r"\boxed{E'}", "E", 0.0),
        # separators
        (r"\boxed{1,234/2}", "617", 1.0),
        ("The answer is 13/4.", r"\frac{13}{4}", 1.0),
        (r"\boxed{56,\!01,\!78,\!95,\!760}", "56017895760", 1.0),
        ("1000,99", "1000.99", 1.0),
        (r"\boxed{[1,100]}", "1100", 0.0),
        # text answers and choices
        ("The answer is ellipse.", r"\text{ellipse}", 1.0),
        (r"\boxed{Ellipse}", r"\text{ellipse}", 1.0),
        (r"\boxed{hyperbola}", r"\text{ellipse}", 0.0),
        (r"\boxed{\mathcal{B}}", "B", 1.0),
        ("C. x = 42", "C", 1.0),
        (r"The final answer is $\boxed{\textbf{(C)}\ 12}$", "C", 1.0),
        (r"\boxed{(D)}", "C", 0.0),
        # structures, as math-verify compares them
        (r"\boxed{-2 \le x \le 7}", r"x \in [-2,7]", 1.0),
        (r"\boxed{\begin{bmatrix} 0 & 1 \\ 1 & 0 \end{bmatrix}}", r"\begin{pmatrix}0&1\\1&0\end{pmatrix}", 1.0),
        (r"\boxed{(2, 1)}", "(1, 2)", 0.0),
        (r"\boxed{\{2, 1\}}", r"\{1, 2\}", 1.0),
        (r"\boxed{x = 3 \text{ or } x = -3}", "3, -3", 1.0),
        (r"\boxed{10\%}", "10", 1.0),
    ],
)
def test_lenient_on_form_strict_on_value(response, gold, expected):
    got = verdict(response, gold)
    assert got.reward == expected, (response, gold, got.outcome)


def test_min_significant_digits_is_configurable():
    strict = MathVerifier(workers=0, progress=False, min_significant_digits=20)
    lenient = MathVerifier(workers=0, progress=False, min_significant_digits=2)
    assert verdict(r"\boxed{2.6667}", r"\frac{8}{3}", strict).reward == 0.0
    assert verdict(r"\boxed{0.5}", r"\frac{1}{2}", strict).reward == 1.0  # exact stays exact
    assert verdict(r"\boxed{0.33}", r"\frac{1}{3}", lenient).reward == 1.0


@pytest.mark.parametrize(
    ("gold", "approximation", "expected"),
    [("0.066666793", "0.0666668", True), ("0.066793", "0.067", False), ("1000", "1000.0", True), ("1000", "999.99995", False)],
)
def test_numbers_match(gold, approximation, expected):
    assert numbers_match(Decimal(gold), Decimal(approximation), 4) is expected


@pytest.mark.parametrize(
    ("gold", "gold_format", "response", "expected"),
    [
        ("x**6", "auto", r"\boxed{x^6}", 1.0),
        ("2**100", "auto", r"\boxed{1267650600228229401496703205376}", 1.0),
        ("7*sin(pi*x/5)+1", "auto", r"\boxed{7\sin\left(\frac{\pi x}{5}\right)+1}", 1.0),
        ("7*sin(pi*x/5)+1", "auto", r"\boxed{7\sin(\pi x)+1}", 0.0),
        ("7*sin(pi*x/5)+1", "sympy", r"\boxed{1 + 7\sin(0.2\pi x)}", 1.0),
        ("pi/2", "sympy", r"\boxed{\frac{\pi}{2}}", 1.0),
        (r"\frac{\pi}{2}", "latex", r"\boxed{\pi/2}", 1.0),
        ("x^2+1", "latex", r"\boxed{x**2 + 1}", 1.0),  # the prediction side in Python syntax too
        ("Yes", "text", r"\boxed{\text{yes}}", 1.0),
        ("No solution", "text", "The answer is no solution.", 1.0),
        ("12", "text", r"\boxed{12.0}", 0.0),  # text golds are compared as text
        ("The area is $\\boxed{12}$ square units.", "auto", r"\boxed{12}", 1.0),  # a gold that is a solution
        ("Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18", "auto", "#### 18", 1.0),
    ],
)
def test_gold_formats(gold, gold_format, response, expected):
    verifier = MathVerifier(workers=0, progress=False, gold_format=gold_format)
    got = verdict(response, gold, verifier)
    assert got.reward == expected, (gold, response, got.outcome)


def test_unreadable_golds_are_invalid_not_wrong():
    assert prepare_gold("   ") is None
    assert prepare_gold("mystery(3)", "sympy") is None
    verifier = MathVerifier(workers=0, progress=False, gold_format="sympy")
    assert verdict(r"\boxed{3}", "mystery(3)", verifier).outcome == "invalid_gold"


def test_benchmark_derived_cases():
    got = VERIFIER.score([c["prediction"] for c in BENCHMARK_CASES], [PromptRecord(c["id"], "", c["gold"]) for c in BENCHMARK_CASES])
    wrong = [(c["id"], c["kind"], v.outcome) for c, v in zip(BENCHMARK_CASES, got) if (v.reward == 1.0) != c["expected"]]
    kinds = Counter(c["kind"] for c in BENCHMARK_CASES)
    assert kinds["negative_boxed"] > 100 and kinds["sympy_gold"] >= 30
    assert wrong == []
