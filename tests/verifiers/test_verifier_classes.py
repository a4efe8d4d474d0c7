"""The five answer classes of issue 23, each of which fails here when its handling breaks.

``data/verifier_cases/development.jsonl`` is the development half of the labelled cases collected for
them (sources in ``data/verifier_cases/README.md``); the held-out half is measured by
``bench/verifier_cases.py``, never by a test, so that it stays held out. The hand-written cases below
pin each policy (docs/verifier.md): code syntax read whole or rejected, one percentage policy both ways,
broken answer markers, words and choice letters, equations and symbolic forms.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from gvmlit.records import PromptRecord
from gvmlit.verifiers import MathVerifier, extract_answer
from gvmlit.verifiers.choice import gold_choice, problem_options
from gvmlit.verifiers.normalize import code_span, percent_body
from helpers import ROOT

DEVELOPMENT = [json.loads(line) for line in (ROOT / "data" / "verifier_cases" / "development.jsonl").read_text(encoding="utf-8").splitlines()]
STRICT = MathVerifier(workers=0, progress=False)
LENIENT = MathVerifier(workers=0, progress=False, strict_code=False)
CLASSES = ("code_syntax", "percent", "markers", "prose_choice", "equations")


def verdict(response: str, gold: str, problem: str = "", verifier: MathVerifier = STRICT):
    return verifier.score_one(response, PromptRecord("case", problem, gold))


def test_development_half_per_class():
    """Every non-disputed development case is right, reported per class (a broken class names itself)."""
    assert {c["class"] for c in DEVELOPMENT} == set(CLASSES)
    wrong = defaultdict(list)
    for case in DEVELOPMENT:
        if case.get("disputed"):
            continue
        got = verdict(case["prediction"], case["gold"], case.get("problem", ""))
        if (got.reward == 1.0) != case["expected"]:
            wrong[case["class"]].append((case["id"], got.outcome))
    assert dict(wrong) == {}


# -- 1. programming-language syntax -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        ("2*sqrt(3)", "3", 0.0),  # read whole: 2√3, never its last number
        ("2*sqrt(3)", r"2\sqrt{3}", 1.0),
        ("So the area is 2*sqrt(3) square units.", "3", 0.0),
        ("So the area is 2*sqrt(3) square units.", r"\sqrt{12}", 1.0),
        ("The result is 2**5", "32", 1.0),
        ("The result is 2**5", "5", 0.0),
        ("x = (1 + sqrt(5))/2", r"\frac{1+\sqrt{5}}{2}", 1.0),
        ("x = (1 + sqrt(5))/2", "5", 0.0),
        ("Area = 36*pi", r"36\pi", 1.0),
        ("Area = 36*pi", "36", 0.0),
        ("The answer is 10^(3)", "1000", 1.0),
        ("The simplified form is 6*r^2 - 4*r - 24", "6r^2-4r-24", 1.0),
        ("The value is sqrt(2)**2", "2", 1.0),
        ("The total is 2*3 = 6", "6", 1.0),  # a computation followed by its value states the value
        ("The result is *42*.", "42", 1.0),  # markdown emphasis is not a product
    ],
)
def test_code_syntax_is_read_as_the_expression_it_is(response, gold, expected):
    got = verdict(response, gold)
    assert got.reward == expected, (response, gold, got.outcome)


def test_code_that_is_no_expression_is_rejected_unless_relaxed():
    """``2*sqrt3`` (no call parentheses) is code but no expression: rejected under the default strict
    policy; ``strict_code=False`` falls back to the value the sentence states, as before issue 23 (here 2:
    the relaxed policy rewards a broken formula that starts or ends with the gold's number)."""
    assert verdict("So the total is 2*sqrt3", "2").outcome == "unparseable_answer"
    assert verdict("So the total is 2*sqrt3", "2", verifier=LENIENT).reward == 1.0  # the number it starts with
    # parseable code is read whole in both policies
    assert verdict("So the area is 2*sqrt(3)", "3", verifier=LENIENT).reward == 0.0


def test_code_span_stops_at_words():
    text = "the area is 2*sqrt(3) square units"
    start = text.index("2")
    assert text[start : code_span(text, start)] == "2*sqrt(3)"
    assert code_span("12 apples", 0) is None  # no code operator: a plain number is not code


# -- 2. percentages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "body"),
    [("12.5%", "12.5"), (r"12.5\%", "12.5"), ("12.5 percent", "12.5"), ("12.5 per cent", "12.5"), ("4 4/9 pct", "4 4/9"),
     (r"12.5\text{ percent}", "12.5"), ("10", None), (r"(10\%, 20\%)", None)],
)
def test_percent_spellings(text, body):
    assert percent_body(text) == body


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        # a percentage equals the bare number of percent (as the benchmark keys write it) and its value
        (r"\boxed{10\%}", "10", 1.0),
        (r"\boxed{10}", r"10\%", 1.0),
        (r"\boxed{0.225}", "22.5%", 1.0),
        (r"\boxed{17.5\%}", "0.175", 1.0),
        (r"\boxed{\frac{3}{8}}", "37.5%", 1.0),
        ("The answer is 12.5 per cent.", r"12.5\%", 1.0),
        ("The answer is 4 4/9%", "40/900", 1.0),
        # two percentages compare their numbers; no percent sign anywhere: no percentage
        (r"\boxed{1.75\%}", "17.5%", 0.0),
        (r"\boxed{10\%}", "0.1%", 0.0),
        (r"\boxed{0.0175}", "17.5%", 0.0),
        (r"\boxed{0.1}", "10", 0.0),
        (r"\boxed{12.5}", "0.125", 0.0),
    ],
)
def test_one_percentage_policy_both_ways(response, gold, expected):
    got = verdict(response, gold)
    assert got.reward == expected, (response, gold, got.outcome)


# -- 3. malformed answer markers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        (r"The final answer is \boxed{13", "13"),  # never closed: up to the end
        (r"Hence the diagonal is $\boxed{6\sqrt{2}$.", r"6\sqrt{2}"),  # closed by the math delimiter
        (r"We first get \boxed{12}. Correcting the count: \boxed{13", "13"),
        (r"The largest area is \boxed{{\frac{20000}{\pi}}", r"\frac{20000}{\pi}"),
        (r"The length is boxed{2\sqrt{5}}.", r"2\sqrt{5}"),  # no backslash
        (r"\box{B}", "B"),
        (r"So $\cos B = \boxed{\frac{\sqrt{7}}{4}}}$.", r"\frac{\sqrt{7}}{4}"),  # a stray closing brace
        (r"Solving, \boxed{y = 2}, i.e. \boxed{3}.", "3"),  # a restatement: the last box counts
        ("Thus the number is **73**.\n\n\u2705 Final Answer: **73**", "73"),
        (r"\boxed{\frac{3\sqrt{3}}{", None),  # cut inside the box: no answer, not a fragment
        ("\\boxed{" * 50, None),
    ],
)
def test_broken_answer_markers(response, answer):
    assert extract_answer(response) == answer


# -- 4. prose and choice answers --------------------------------------------------------------------

SHAPES = (
    r"For a constant $c,$ find the shape described by the equation \[z = c.\](A) Line (B) Circle (C) Plane "
    r"(D) Sphere (E) Cylinder (F) Cone  Enter the letter of the correct option."
)


def test_problem_options_and_gold_choices():
    assert problem_options(SHAPES)["C"] == "plane" and len(problem_options(SHAPES)) == 6
    assert gold_choice(r"\text{(C)}", SHAPES).letter == "C"
    assert gold_choice("(B) Boris").text == "boris"
    assert gold_choice("Alina and the answer is\n(C) Cecile").letter == "C"
    assert gold_choice("Plane", SHAPES).letter == "C"  # an option's text names it too
    assert gold_choice("12") is None and gold_choice(r"\frac{1}{2}") is None


@pytest.mark.parametrize(
    ("response", "gold", "problem", "expected"),
    [
        (r"The surface is a plane: $\boxed{\text{Plane}}$.", r"\text{(C)}", SHAPES, 1.0),
        (r"So the answer is $\boxed{\text{(D) Sphere}}$.", r"\text{(C)}", SHAPES, 0.0),
        (r"\boxed{C}", "Plane", SHAPES, 1.0),
        ("Let's think. It's not A because it doesn't make sense, therefore I think it's B", "B", "", 1.0),
        ("The answer is surely B, it cannot be C or D", "B", "", 1.0),
        ("It can't be A or B, so C", "B", "", 0.0),  # one negation covers "A or B"
        ("A. Because B is not valid", "A", "", 1.0),
        ("The answer is not C, it's D.", "C", "", 0.0),
        ("Definitely not C!", "C", "", 0.0),
        ("Patient needs Vitamin C supplementation. Answer: D", "C", "", 0.0),
        ("The answer is 12.", "C", "", 0.0),  # a marked answer that is no option: no letter elsewhere counts
        ("C", "C Cecile", "", 1.0),
        ("Alina", "(D) Alina", "", 1.0),
        (r"\boxed{E'}", "E", "", 0.0),  # a primed point is no choice letter
        # words and "so the answer is …" inside a sentence
        ("Composing with an even function gives an even function, so the answer is \"even\".", r"\text{even}", "", 1.0),
        ("Thus the function is even.", r"\text{even}", "", 1.0),
        (r"Hence it is neither even nor odd: $\boxed{\text{neither}}$", r"\text{even}", "", 0.0),
        ("Evelyn covers the distance fastest, so the answer is Evelyn.", r"\text{Evelyn}", "", 1.0),
        ("Briana is the slowest, so the answer is Briana.", r"\text{Evelyn}", "", 0.0),
        ("The equation has no real roots, so the answer is no solution.", r"\text{no solution}", "", 1.0),
        ("So the meeting falls on a Sunday.", r"\text{Sunday}", "", 0.0),  # no verb before the day: not stated as the answer
        ("So the answer is Sunday.", r"\text{Sunday}", "", 1.0),
        ("So the answer is Monday.", r"\text{Sunday}", "", 0.0),
    ],
)
def test_words_and_choices(response, gold, problem, expected):
    got = verdict(response, gold, problem)
    assert got.reward == expected, (response, gold, got.outcome)


# -- 5. equations and symbolic forms ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        (r"\boxed{5 = x}", "x = 5", 1.0),  # reversed
        (r"\boxed{5 = x}", "5", 1.0),
        (r"\boxed{x = 5}", "5", 1.0),
        (r"\boxed{x = -5}", "x = 5", 0.0),
        (r"\boxed{y - 4x = -1}", "y = 4x - 1", 1.0),  # rearranged: one a multiple of the other
        (r"\boxed{2y - 8x = -2}", "y = 4x - 1", 1.0),
        (r"\boxed{y = -x + 4}", "y = 4x - 1", 0.0),
        (r"\boxed{x^2 = 1}", "x = 1", 0.0),
        (r"\boxed{h(x) = 2, f(x) = x}", "f(x)=x, h(x)=2", 1.0),  # a system in another order
        (r"\boxed{-3i + 2}", "2 - 3i", 1.0),  # complex numbers in other forms
        (r"\boxed{4e^{2\pi i/3}}", r"-2+2\sqrt{3} i", 1.0),
        (r"\boxed{2\cos\frac{\pi}{3} + 2i\sin\frac{\pi}{3}}", r"1+\sqrt{3} i", 1.0),
        (r"\boxed{\sqrt{2} + i}", r"1+\sqrt{2} i", 0.0),
        (r"\boxed{\frac{(1-i)e^{3it}}{2}}", r"\frac{e^{3 i t}}{1+i}", 1.0),
        (r"\boxed{\frac{(1+i)e^{3it}}{2}}", r"\frac{e^{3 i t}}{1+i}", 0.0),
        (r"\boxed{\cos(2t) + \sin(2t)}", r"\sqrt{2} \cos (2 t-\pi / 4)", 1.0),  # equal by an identity
        (r"\boxed{\sqrt{2}\cos(2t + 7\pi/4)}", r"\sqrt{2} \cos (2 t-\pi / 4)", 1.0),  # by periodicity
        (r"\boxed{\sqrt{2}\cos(2t + \pi/4)}", r"\sqrt{2} \cos (2 t-\pi / 4)", 0.0),
        (r"\boxed{\sin^2 x}", r"1 - \cos^2 x", 1.0),
        (r"\boxed{\sin x}", r"\cos x", 0.0),
        (r"\boxed{90}", r"90^\circ", 1.0),  # degrees and units against bare numbers
        ("The angle between the lines is 90 degrees.", r"90^\circ", 1.0),
        (r"\boxed{\frac{\pi}{2}}", r"90^\circ", 0.0),
        (r"\boxed{1200}", r"1200 \mbox{ inches}^2", 1.0),
        (r"\boxed{38\frac{4}{7}^\circ}", r"\frac{270}7\text{ degrees}", 1.0),
    ],
)
def test_equations_and_symbolic_forms(response, gold, expected):
    got = verdict(response, gold)
    assert got.reward == expected, (response, gold, got.outcome)


def test_a_huge_power_is_not_evaluated_numerically():
    """The numeric check must stay cheap: ``10^{10^{10^{10}}}`` is never evaluated (in-process, no timeout)."""
    assert verdict(r"\boxed{10^{10}}", r"10^{10^{10^{10}}}").reward == 0.0
