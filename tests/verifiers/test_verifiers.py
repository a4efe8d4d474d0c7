"""Verifiers on real answer formats (math-verify runs for real)."""

import pytest

from gvmlit.records import PromptRecord
from gvmlit.verifiers import ArithmeticVerifier, MathVerifier, extract_answer
from helpers import rewards

# (response as a model writes it, gold answer, expected reward)
MATH_CASES = [
    (r"So the answer is $\boxed{\frac{1}{2}}$.", "0.5", 1.0),
    (r"$\boxed{0.5}$", r"\frac{1}{2}", 1.0),
    (r"\boxed{\dfrac{3}{4}}", r"\frac34", 1.0),
    (r"\boxed{\tfrac{3}{4}}", "0.75", 1.0),
    (r"\boxed{3/4}", r"\frac{3}{4}", 1.0),
    (r"\boxed{-\frac{7}{2}}", "-3.5", 1.0),
    ("The total is 42.\n#### 42", "42", 1.0),
    ("#### 1,234", "1234", 1.0),
    ("#### 41", "42", 0.0),
    ("The answer is 17.", "17", 1.0),
    ("the answer is: 2/3", r"\frac{2}{3}", 1.0),
    (r"\boxed{\{1, 2, 3\}}", r"\{3, 1, 2\}", 1.0),
    (r"\boxed{\{1, 2\}}", r"\{1, 2, 3\}", 0.0),
    (r"\boxed{(0, 1]}", "(0,1]", 1.0),
    (r"\boxed{[0, 1]}", "(0,1]", 0.0),
    (r"\boxed{(-\infty, 2)}", r"(-\infty,2)", 1.0),
    (r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}", 1.0),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}", 1.0),
    (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", 1.0),
    (r"\boxed{x^2 + 2x + 1}", "(x+1)^2", 1.0),
    (r"\boxed{x^2 + 1}", "(x+1)^2", 0.0),
    (r"\boxed{50\%}", "50", 1.0),
    (r"\boxed{10\text{ cm}}", "10", 1.0),
    (r"\boxed{\pi}", r"\pi", 1.0),
    (r"\boxed{2\pi}", r"\pi", 0.0),
    (r"\boxed{3.14}", r"\pi", 0.0),
    (r"\boxed{1000}", "1,000", 1.0),
    (r"\boxed{5}", "6", 0.0),
    (r"\boxed{-5}", "5", 0.0),
    (r"I think it is \boxed{7} but wait \boxed{8}", "8", 1.0),
    (r"I think it is \boxed{7} but wait \boxed{8}", "7", 0.0),
    (r"\boxed{\frac{a}{b}}", r"\frac{a}{b}", 1.0),
    (r"\boxed{y = 2x + 3}", "2x+3", 1.0),
    (r"\boxed{\frac{10}{4}}", r"\frac{5}{2}", 1.0),
    (r"\boxed{2^{10}}", "1024", 1.0),
    (r"\boxed{0.333}", r"\frac{1}{3}", 0.0),
    (r"\boxed{1.01}", "1", 0.0),
    ("no final answer here", "3", 0.0),
    ("", "3", 0.0),
    (r"\boxed{}", "3", 0.0),
]


IN_PROCESS = MathVerifier(workers=0, progress=False)


@pytest.mark.parametrize(("response", "gold", "expected"), MATH_CASES)
def test_math_verifier_formats(response, gold, expected):
    verdict = IN_PROCESS.score_one(response, PromptRecord("case", "", gold))
    assert verdict.reward == expected, (response, gold, verdict.outcome)


def test_outcomes_are_counted_and_batch_scoring_matches():
    verifier = MathVerifier(workers=0, progress=False)
    responses = [c[0] for c in MATH_CASES]
    golds = [c[1] for c in MATH_CASES]
    assert rewards(verifier, responses, golds) == [c[2] for c in MATH_CASES]
    assert sum(verifier.outcomes.values()) == len(MATH_CASES)
    assert verifier.outcomes["correct"] == sum(c[2] for c in MATH_CASES)
    assert verifier.outcomes["no_answer"] >= 2


def test_extract_answer_priorities():
    assert extract_answer(r"#### 3 and \boxed{4}") == "4"
    assert extract_answer(r"\boxed{\frac{1}{\sqrt{2}}}") == r"\frac{1}{\sqrt{2}}"
    assert extract_answer("So the answer is $12$.") == "12"
    assert extract_answer("nothing") is None


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        ("12+3=15;#### 15", "15", 1.0),
        ("12+3=14;#### 14", "15", 0.0),
        ("12+3=15;15", "15", 0.0),  # no final answer marker
        ("#### 1;#### 15", "15", 1.0),  # the last one counts
        ("####15", "15", 1.0),
        ("#### -4", "-4", 1.0),
    ],
)
def test_arithmetic_verifier(response, gold, expected):
    assert rewards(ArithmeticVerifier(progress=False), [response], [gold]) == [expected]


def test_math_preset_lists_the_class_defaults():
    """configs/verifier/math.yaml shows MathVerifier's settings (strict_code among them) with their defaults."""
    import inspect

    import yaml

    from helpers import ROOT

    preset = yaml.safe_load((ROOT / "configs" / "verifier" / "math.yaml").read_text())
    assert preset["class_path"] == "gvmlit.verifiers.MathVerifier"
    defaults = {k: v.default for k, v in inspect.signature(MathVerifier.__init__).parameters.items() if v.default is not inspect.Parameter.empty}
    for key, value in preset["init_args"].items():
        expected = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
        assert expected == value, f"math.yaml: {key}={value!r} but MathVerifier defaults to {defaults[key]!r}"
    assert "strict_code" in preset["init_args"]
