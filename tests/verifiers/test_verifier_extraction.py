"""The extraction policy: which part of a response is the answer, and how recipes change it by config."""

from __future__ import annotations

import pytest

from gvmlit.records import PromptRecord
from gvmlit.verifiers import ExtractionPolicy, MathVerifier, extract_answer
from gvmlit.verifiers.extraction import clean_answer, final_line_answer, raw_answer
from gvmlit.verifiers.normalize import normalize_unicode, python_to_latex


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        # answer tags (the R1-Zero prompt): only the last tag counts, text outside it is ignored
        ("<think>so 41?</think><answer>42</answer>", "42"),
        ("Earlier I wrote 42. <answer>41</answer>", "41"),
        ("<answer>1</answer> then <answer>\n\\frac{1}{2}\n</answer>", r"\frac{1}{2}"),
        (r"<answer>The answer is $\boxed{7}$</answer>", "7"),
        ("<answer>7", "7"),  # cut off before the closing tag
        ("<answer>x = 3 is the only root, since f is increasing</answer>", "3"),
        # the last stated answer wins, whatever its format
        (r"So $\boxed{200}$ and then $\boxed{255}$. Final Answer: The final answer is $10,455$.", "10455"),
        (r"I think the answer is 5. Wait, recheck: \boxed{6}", "6"),
        (r"#### 3 and \boxed{4}", "4"),
        ("#### Step 1: add\n2 + 2 = 4\n#### 4", "4"),  # a markdown heading is no answer
        # "the answer is …": the value, not a word
        ("The answer is therefore 8.", "8"),
        ("Thus the answer is clearly $8$, as claimed.", "8"),
        ("Final Answer: The largest $n$ is 34.", "34"),
        ("The answer is 5, not 6.", "5"),
        ("The answer is 1, 2, and 3.", "1, 2, 3"),
        ("The answer is $69$, $84$.", "69, 84"),
        (r"\boxed{6}. I hope the answer is correct.", "6"),
        ("We check our answer: $17 \\cdot 44 = 748$. So \\boxed{44}.", "44"),
        ("The answer is ellipse.", "ellipse"),
        ("答案：每份应该是 (\\frac{2}{5}) 吨。", r"\frac{2}{5}"),
        # exact value and its approximation
        (r"\boxed{\sqrt{2}} \approx \boxed{1.414}", r"\sqrt{2}"),
        (r"\boxed{\frac{\sqrt{3}}{3} \approx 0.577}", r"\frac{\sqrt{3}}{3}"),
        (r"so $x \approx 1.41$", "1.41"),
        # a bare final line
        ("We simplify.\n\n-\\frac{10}{9}", r"-\frac{10}{9}"),
        ("Therefore, there are 12 distinct sequences. I hope it is correct. <|im_start|>user", "12"),
        ("...so the error increases by 100%.", r"100\%"),  # one spelling of a percentage
        ("Haley总共有99颗弹珠。", "99"),
        ("no final answer here", None),
        ("", None),
        (r"\boxed{}", None),
        ("<think>still thinking about \\boxed{1}", None),
    ],
)
def test_default_policy(response, answer):
    assert extract_answer(response) == answer


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("13/4.", "13/4"),
        ("1,234/2", "1234/2"),
        ("$1,000,000$", "1000000"),
        ("(1,100]", "(1,100]"),  # an interval, not a thousand-something
        ("56,\\!01,\\!78,\\!95,\\!760", "56017895760"),
        ("1 000", "1000"),
        ("1\\,000", "1000"),
        ("6.5e-2", r"6.5\times 10^{-2}"),
        ("1010_2", "10"),
        ("4343_{6}", "999"),
        ("4343_0", r"\text{4343base0}"),  # no base: no number, never equal to 4343
        ("4\\sqrt(2)", r"4\sqrt{2}"),
        ("-2 \\\\le x \\\\le 7", r"-2 \le x \le 7"),
        ("(\\begin{pmatrix}1\\\\2\\\\\\end{pmatrix})", r"\begin{pmatrix}1\\2\end{pmatrix}"),
        ("\\text{(073)}", "073"),
        ("\\$16386.17", "16386.17"),
        ("12 dollars", "12"),
        ("2 pi", r"2 \pi"),  # a product in SymPy syntax, not "2 dollars"
        ("3128 1/2", r"\frac{6257}{2}"),  # a mixed number is the fraction it is
        ("12\\text{ and }13", "12, 13"),
        ("19, 46, and 82", "19, 46, 82"),
        ("\\mathcal{B}", "B"),
        ('\\"$12 $ and $13 $\\"', "12, 13"),
        ("x**6", "{x}^{6}"),
        ("infinity", r"\infty"),
    ],
)
def test_cleaning(raw, clean):
    assert clean_answer(raw) == clean


def test_unicode_is_normalised_before_extraction():
    assert normalize_unicode("1\u202f000 \u2212 x\u00b2 \u00d7 \u03c0") == r"1 000 - x^{2} \times  \pi "
    assert normalize_unicode("3\u00bd") == r"3\frac{1}{2}"
    assert extract_answer("\\boxed{1\u00a0000}") == "1000"
    assert extract_answer("\\boxed{\u22125}") == "-5"


@pytest.mark.parametrize(
    ("python", "latex"),
    [
        ("x**6", "{x}^{6}"),
        ("2**100", "{2}^{100}"),
        ("7*sin(pi*x/5)+1", r"7 \cdot \sin\left(\frac{\pi \cdot x}{5}\right) + 1"),
        ("sqrt(2)/2", r"\frac{\sqrt{2}}{2}"),
        ("np.arcsin(10/13)", r"\arcsin\left(\frac{10}{13}\right)"),
        ("(3, pi/2)", r"\left(3, \frac{\pi}{2}\right)"),
        ("exp(-x)*log(x, 2)", r"e^{-x} \cdot \log_{2}\left(x\right)"),
        ("x +* 2", None),
        ("mystery(3)", None),
    ],
)
def test_python_syntax_to_latex(python, latex):
    assert python_to_latex(python) == latex


# -- the policy is configurable ---------------------------------------------------------------------

RESPONSE = "The answer is 7.\n\\boxed{8}\n#### 9"


def test_choose_last_or_by_format_order():
    assert extract_answer(RESPONSE) == "9"
    assert extract_answer(RESPONSE, ExtractionPolicy(choose="format_order")) == "8"
    assert extract_answer(RESPONSE, ExtractionPolicy(formats=("answer_is", "hashes"), choose="format_order")) == "7"


def test_formats_can_be_restricted():
    boxed_only = ExtractionPolicy(formats=("boxed",))
    assert extract_answer("The answer is 7.", boxed_only) is None
    assert extract_answer("Some work.\n7", boxed_only) is None
    assert extract_answer("Some work.\n7") == "7"
    # without answer_tag, tags are plain text: the last box anywhere counts
    no_tags = ExtractionPolicy(formats=("boxed",))
    assert extract_answer(r"<answer>\boxed{1}</answer> \boxed{2}", no_tags) == "2"
    assert extract_answer(r"<answer>\boxed{1}</answer> \boxed{2}") == "1"


def test_join_boxed_and_prefer_exact_can_be_switched_off():
    assert extract_answer(r"\boxed{1} and \boxed{2}") == "1, 2"
    assert extract_answer(r"\boxed{1} and \boxed{2}", ExtractionPolicy(join_boxed=False)) == "2"
    assert extract_answer(r"\boxed{\sqrt{2} \approx 1.414}", ExtractionPolicy(prefer_exact=False)) == "1.414"


def test_unicode_normalisation_can_be_switched_off():
    policy = ExtractionPolicy(normalize_unicode=False)
    assert raw_answer("\\boxed{\u22125}", policy) == "\u22125"


def test_final_line_takes_the_last_sentence_of_the_last_line():
    assert final_line_answer("First $x = 2$.\nThen the total is $14$ apples.") == "14"
    assert final_line_answer("Some text.\n$(1,2)$, $(3,4)$") == "(1,2), (3,4)"
    assert final_line_answer("We get\n\\[\nx = 5\n\\]") == "\nx = 5\n"


def test_the_policy_is_set_through_math_verifier_arguments():
    verifier = MathVerifier(workers=0, progress=False, answer_formats=("hashes",))
    record = PromptRecord("p", "", "8")
    assert verifier.score([r"\boxed{8}", "#### 8"], [record, record])[0].outcome == "no_answer"
    assert verifier.outcomes == {"no_answer": 1, "correct": 1}
    assert verifier.extract("#### 1,000") == "1000"


def test_runaway_generations_are_cut_short():
    """Repetition loops are common in RL; extraction runs in the training process, outside any timeout."""
    from gvmlit.verifiers.extraction import MAX_ANSWER_CHARS

    assert extract_answer("\\boxed{" * 5000) is None
    assert extract_answer("<answer>" * 5000) is None
    assert len(extract_answer("#### " * 5000)) <= MAX_ANSWER_CHARS
    assert extract_answer("the answer is 5. " * 2000) == "5"
