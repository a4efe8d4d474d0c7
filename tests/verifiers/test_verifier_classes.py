"""The five answer classes of issue 23, each of which fails here when its handling breaks.

``data/verifier_cases/development.jsonl`` is the development half of the labelled cases collected for
them (sources in ``data/verifier_cases/README.md``); the held-out half is measured by
``bench/verifier_cases.py``, never by a test, so that it stays held out. The hand-written cases below
pin each policy (docs/verifier.md): code syntax read whole or rejected, one percentage policy both ways,
broken answer markers, words and choice letters, equations and symbolic forms; and, for the three
classes the held-out half showed missing (lower-case choice letters, quantities named on one side,
mixed numbers), hand-written positives and negatives of each and of their relatives.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from gvmlit.records import PromptRecord
from gvmlit.verifiers import MathVerifier, extract_answer
from gvmlit.verifiers.choice import gold_choice, problem_options
from gvmlit.verifiers.normalize import code_span, juxtaposed_numbers, mixed_numbers, named_quantity, percent_body
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


# -- second round: the three classes the held-out half missed, and their relatives --------------------
# (a) a choice letter in lower case, (b) a quantity named by an equation on one side only, (c) mixed
# numbers (with a percent, or not); each with negatives: a different letter or value, the word "a",
# products that look like mixed numbers. Written by hand, none of them a held-out pair.

OPTIONS = "Which is largest? (A) 1 (B) 2 (C) 3 (D) 4 (E) 5"
LOWER_OPTIONS = "Which is largest? (a) 1 (b) 2 (c) 3 (d) 4"


@pytest.mark.parametrize(
    ("response", "gold", "problem", "expected"),
    [
        ("So the answer is d", "D", "", 1.0),
        ("So the answer is d", "B", "", 0.0),
        ("The answer is (b).", "B", OPTIONS, 1.0),
        ("The answer is (b).", "C", OPTIONS, 0.0),
        ("Answer: e) 5", "E", OPTIONS, 1.0),
        (r"Hence $\boxed{(d)}$.", "D", "", 1.0),
        (r"\boxed{d}", "C", "", 0.0),
        ("**Answer: b**", "B", "", 1.0),
        ("After checking each one, option b works.", "B", "", 1.0),
        ("It is not option b, so option e.", "E", "", 1.0),
        ("It is not option b, so option e.", "B", "", 0.0),
        ("The correct choice is (d).", "D", "", 1.0),
        ("d) since the others fail", "D", "", 1.0),
        ("The best option here is d", "D", "", 1.0),
        ("The best choice among them is clearly (e).", "E", "", 1.0),
        ("I choose b.", "B", "", 1.0),
        ("I choose a different approach, and get 5.", "A", "", 0.0),
        ("The answer to part a is 5.", "A", "", 0.0),
        ("b", "B", "", 1.0),
        # the word "a" and other lower-case letters in prose choose nothing
        ("The answer is a bit more than 3.", "A", "", 0.0),
        ("The answer is a multiple of 4.", "A", "", 0.0),
        ("This takes a while; it is a circle.", "A", "", 0.0),
        ("We need a and b positive, so the sum is b.", "B", "", 0.0),
        ("Thus a = 5", "A", "", 0.0),
        ("The answer is not b.", "B", "", 0.0),
        # a gold letter in a problem that lists no options may be a point or a constant: c is not C
        ("The answer is c", "C", "Find the constant C such that f is continuous.", 0.0),
        # options listed in lower case by the problem: the gold may be lower case too
        ("The answer is (C)", "c", LOWER_OPTIONS, 1.0),
        ("The answer is c", "(c)", LOWER_OPTIONS, 1.0),
        ("The answer is (b)", "c", LOWER_OPTIONS, 0.0),
        # a lower-case gold without options is a variable, not a choice
        (r"\boxed{c}", "c", "", 1.0),
        (r"\boxed{C}", "c", "", 0.0),
    ],
)
def test_lower_case_choice_letters(response, gold, problem, expected):
    got = verdict(response, gold, problem)
    assert got.reward == expected, (response, gold, got.outcome)


def test_lower_case_options_in_the_problem():
    assert problem_options(LOWER_OPTIONS) == {"A": "1", "B": "2", "C": "3", "D": "4"}
    assert gold_choice("c", LOWER_OPTIONS).letter == "C"
    assert gold_choice("c") is None  # no options: a variable
    assert problem_options("If f(a) = 1, g(b) = 2 and h(c) = 3, find c.") == {}  # arguments, not options
    assert problem_options("Parts (a) and (b) follow.") == {}  # fewer than three, from (a)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (r"I_{\max }=\frac{q_{0}}{\sqrt{2 L C}}", (r"I_{\max }", r"\frac{q_{0}}{\sqrt{2 L C}}")),
        (r"\Delta p \approx -\frac{\hbar\omega_L}{c}", (r"\Delta p", r"-\frac{\hbar\omega_L}{c}")),
        ("x_{1} = 3", ("x_{1}", "3")),
        (r"\lambda_\text{max} = 500", (r"\lambda_\text{max}", "500")),
        ("f(2) = 5", ("f(2)", "5")),
        (r"\angle ABC = 30^\circ", (r"\angle ABC", r"30^\circ")),
        (r"\angle B E A_{1}=90", (r"\angle B E A_{1}", "90")),
        ("2x = 6", None),  # not a name
        ("x = 1, y = 2", None),  # a system
        (r"x \le 3", None),
        (r"\pi \approx 3.14", None),  # a constant, not a name
        ("x^2 = 4", None),
    ],
)
def test_named_quantities(text, named):
    assert named_quantity(text) == named


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        # the gold names its quantity, the response gives the value (and the reverse)
        (r"\boxed{\frac{q_0}{\sqrt{2LC}}}", r"I_{\max} = \frac{q_{0}}{\sqrt{2 L C}}", 1.0),
        (r"\boxed{\frac{q_0}{\sqrt{LC}}}", r"I_{\max} = \frac{q_{0}}{\sqrt{2 L C}}", 0.0),
        (r"The maximum current is $I_{\max} = \frac{q_0}{\sqrt{2LC}}$.", r"\frac{q_{0}}{\sqrt{2 L C}}", 1.0),
        (r"The maximum current is $I_{\max} = \frac{q_0}{2\sqrt{LC}}$.", r"\frac{q_{0}}{\sqrt{2 L C}}", 0.0),
        (r"\boxed{\frac{q_0}{\sqrt{2LC}} = I_{\max}}", r"\frac{q_{0}}{\sqrt{2 L C}}", 1.0),  # reversed
        (r"\boxed{-\frac{\omega_L\hbar}{c}}", r"\Delta p \approx -\frac{\hbar \omega_{L}}{c}", 1.0),
        (r"\boxed{\frac{\omega_L\hbar}{c}}", r"\Delta p \approx -\frac{\hbar \omega_{L}}{c}", 0.0),
        (r"So $\Delta p \approx -\hbar\omega_L/c$.", r"-\frac{\hbar \omega_{L}}{c}", 1.0),
        (r"\boxed{\Delta p = -\frac{\hbar\omega_L}{c}}", r"\Delta p \approx -\frac{\hbar \omega_{L}}{c}", 1.0),
        (r"\boxed{v_{\max} = \sqrt{2gh}}", r"\sqrt{2 g h}", 1.0),
        (r"\boxed{2gh}", r"v_{\max} = 2gh", 1.0),
        (r"\boxed{3gh}", r"v_{\max} = 2gh", 0.0),
        (r"\boxed{E_k = \frac{1}{2}mv^2}", r"\frac{mv^2}{2}", 1.0),
        (r"\boxed{v_0 \approx 3.2}", "3.2", 1.0),
        (r"\boxed{v_0 \approx 3.2}", "3.3", 0.0),
        (r"\boxed{x_1 = 3}", "3", 1.0),
        (r"\boxed{4}", "x_1 = 3", 0.0),
        (r"\boxed{\lambda_{\text{max}} = 600\text{ nm}}", "500", 0.0),
        (r"\boxed{\angle ABC = 30^\circ}", "30", 1.0),
        (r"\boxed{AB = 6}", "AB = 5", 0.0),
        (r"\boxed{T = 2.49}", r"T \approx 2.5", 0.0),  # an approximate gold is still a value
        # both sides named: the same name (however written) compares values; other names stay apart
        (r"\boxed{I_\text{max} = 5}", r"I_{\max} = 5", 1.0),
        (r"\boxed{I_{max} = 6}", r"I_{\max} = 5", 0.0),
        (r"\boxed{y = 5}", "x = 5", 0.0),
        # a named value is never read as the number it starts with (math-verify's fallback did: 2)
        (r"\boxed{v_{\max} = 2gh}", "2", 0.0),
        (r"\boxed{E_k = 2gh}", "2", 0.0),
        # several named quantities against their values in order; other names in another order are wrong
        (r"$y_1 = \boxed{-2(x - 1)^2 + 5}$ and $y_2 = \boxed{3(x + 2)^2 - 2}$", r"y_{1}=-2 x^{2}+4 x+3, y_{2}=3 x^{2}+12 x+10", 1.0),
        (r"$y_1 = \boxed{-2(x - 1)^2 + 6}$ and $y_2 = \boxed{3(x + 2)^2 - 2}$", r"y_{1}=-2 x^{2}+4 x+3, y_{2}=3 x^{2}+12 x+10", 0.0),
        (r"$x = \boxed{2}$, $y = \boxed{3}$", "(2, 3)", 1.0),
        (r"\boxed{3, 4}", "a = 3, b = 4", 1.0),
        (r"\boxed{4, 3}", "a = 3, b = 4", 0.0),
        (r"\boxed{b = 4, a = 3}", "a = 3, b = 4", 1.0),
        # in code syntax, with indexed and Greek names, read whole (never a fragment such as sqrt(2*L*C))
        ("So the maximum current is I_max = q_0/sqrt(2*L*C).", r"\frac{q_{0}}{\sqrt{2 L C}}", 1.0),
        ("So the maximum current is I_max = q_0/sqrt(3*L*C).", r"\frac{q_{0}}{\sqrt{2 L C}}", 0.0),
        ("So the maximum current is I_max = q_0/sqrt(2*L*C).", r"\sqrt{2 L C}", 0.0),
        ("Delta p \u2248 -hbar*omega_L/c", r"\Delta p\approx -\frac{\hbar \omega_{L}}{c}", 1.0),
        ("Delta p \u2248 -hbar*omega_L/c", r"\hbar \omega_{L}", 0.0),
        (r"\boxed{v_avg = 13}", "12", 0.0),
        (r"\boxed{90, 90}", r"$\angle B E A_{1}=90$,$\angle A E B_{1}=90$", 1.0),
        (r"\boxed{90, 80}", r"$\angle B E A_{1}=90$,$\angle A E B_{1}=90$", 0.0),
    ],
)
def test_named_quantities_against_values(response, gold, expected):
    got = verdict(response, gold)
    assert got.reward == expected, (response, gold, got.outcome)


@pytest.mark.parametrize(
    ("text", "fraction"),
    [
        ("2 1/3", r"\frac{7}{3}"),
        ("-2 1/3", r"-\frac{7}{3}"),
        (r"2\frac{1}{3}", r"\frac{7}{3}"),
        (r"2~\tfrac13", r"\frac{7}{3}"),
        (r"2\frac{1}{3}x", r"\left(\frac{7}{3}\right)x"),  # inside an expression: in parentheses
        (r"2\frac{4}{3}", r"2 \cdot \frac{4}{3}"),  # not a proper fraction: a product
        ("2 4/3", "2 4/3"),  # neither: left alone (and rejected as two numbers side by side)
        (r"4\cdot 4/9", r"4\cdot 4/9"),
        (r"2.5\frac{1}{3}", r"2.5\frac{1}{3}"),
        (r"\frac{1}{2}\frac{1}{3}", r"\frac{1}{2}\frac{1}{3}"),
    ],
)
def test_mixed_numbers(text, fraction):
    assert mixed_numbers(text) == fraction


@pytest.mark.parametrize(
    ("text", "juxtaposed"),
    [("4 4", True), ("12 34", True), ("2 4/3", True), ("1 2 3", True), ("1 000 000 5", True),
     ("1 000 000", False), ("(1 000, 2 000)", False), (r"4 \cdot 4", False), ("2, 3", False), (r"\frac{7}{3}", False)],
)
def test_numbers_side_by_side(text, juxtaposed):
    assert juxtaposed_numbers(text) is juxtaposed


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        # a mixed number with a percent, in every spelling and place
        ("4 4/9 percent", "40/900", 1.0),
        ("The increase is 4 4/9 percent.", "4/90", 1.0),
        ("4 4/9 percent", r"\frac{40}{9}", 1.0),  # the number of percent, as the keys write it
        ("4 4/9 percent", "44/9", 0.0),
        ("4 4/9 percent", "16/9", 0.0),
        ("4 4/9 percent", "4/9", 0.0),
        (r"\boxed{5\frac{1}{2}\%}", "0.055", 1.0),
        # without a percent
        ("She needs 2 1/3 cups of flour.", "7/3", 1.0),
        ("She needs 2 1/3 cups of flour.", "1/3", 0.0),
        ("The answer is 2 1/3 cups.", r"\frac73", 1.0),
        (r"\boxed{2\frac{1}{3}}", r"\frac{7}{3}", 1.0),
        (r"\boxed{2~\frac{1}{3}}", r"\frac{7}{3}", 1.0),
        (r"\boxed{2~\frac{1}{3}}", "2", 0.0),
        (r"\boxed{-2\frac13}", "-2.3333", 1.0),
        (r"\boxed{\frac{7}{3}}", "2 1/3", 1.0),
        (r"\boxed{2/3}", "2 1/3", 0.0),
        (r"\boxed{m = 2 1/3 kg}", "7/3", 1.0),
        (r"\boxed{2\frac{1}{3}x}", r"\frac{7x}{3}", 1.0),
        (r"\boxed{2\frac{1}{3}x}", r"\frac{2x}{3}", 0.0),
        # products are not mixed numbers, and two numbers side by side are no number at all
        (r"\boxed{4\cdot 4}", "16", 1.0),
        ("The answer is 4·4/9.", "16/9", 1.0),
        ("The answer is 4·4/9.", "40/9", 0.0),
        (r"\boxed{4 \times \frac{4}{9}}", r"\frac{40}{9}", 0.0),
        (r"\boxed{2\frac{4}{3}}", r"\frac{8}{3}", 1.0),
        (r"\boxed{2\frac{4}{3}}", r"\frac{10}{3}", 0.0),
        (r"\boxed{4 4}", "44", 0.0),
        (r"\boxed{4 4}", "16", 0.0),
        (r"\boxed{4 4}", "8", 0.0),  # math-verify alone reads 4 + 4
        (r"\boxed{12 34}", "46", 0.0),
        (r"\boxed{2 4/3}", r"\frac{10}{3}", 0.0),
        (r"\boxed{1 000 000}", "1000000", 1.0),
        ("The answer is 2 and 1/3.", "7/3", 0.0),  # "and" makes a list
        ("The answer is 2-1/3.", "7/3", 0.0),  # a minus, not a hyphenated mixed number
    ],
)
def test_mixed_numbers_against_values(response, gold, expected):
    got = verdict(response, gold)
    assert got.reward == expected, (response, gold, got.outcome)


def test_two_numbers_side_by_side_state_no_value():
    assert verdict(r"\boxed{4 4}", "44").outcome == "unparseable_answer"
