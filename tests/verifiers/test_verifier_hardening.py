"""MathVerifier on real data: MATH-500 golds, labelled cases from other projects, timeouts, caching."""

import json

import pytest

from gvmlit.verifiers import MathVerifier
from gvmlit.verifiers.math import extract_answer, strip_reasoning
from helpers import ROOT, rewards

DATA = ROOT / "tests" / "fixtures"
MATH500 = [json.loads(line) for line in (DATA / "math500_answers.jsonl").read_text().splitlines()]
CASES = [json.loads(line) for line in (DATA / "verifier_cases_slice.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pooled():
    verifier = MathVerifier(workers=2, timeout_seconds=5, progress=False)
    yield verifier
    verifier.close()


def test_math500_golds_match_when_boxed_and_not_against_another_problem(pooled):
    golds = [r["answer"] for r in MATH500]
    wrapped = [f"Let me work it out step by step. ... so the answer is $\\boxed{{{g}}}$." for g in golds]
    assert rewards(pooled, wrapped, golds) == [1.0] * len(golds)
    # a different problem's gold must not match (skip the few pairs that are genuinely equal)
    shifted = golds[1:] + golds[:1]
    pairs = [(w, g) for w, g, other in zip(wrapped, shifted, golds) if g.replace(" ", "") != other.replace(" ", "")]
    got = rewards(pooled, [w for w, _ in pairs], [g for _, g in pairs])
    assert sum(got) == 0, [p for p, r in zip(pairs, got) if r]


def test_labelled_cases_from_other_projects(pooled):
    """120 labelled (prediction, gold) pairs from other projects' tests and the benchmarks (a slice of the
    set the verifier was developed against); plain math-verify gets about 86 % of the full set right."""
    got = rewards(pooled, [c["prediction"] for c in CASES], [c["gold"] for c in CASES])
    wrong = [c["id"] for r, c in zip(got, CASES) if (r == 1.0) != c["expected"]]
    assert len(wrong) <= 2, wrong


def test_hanging_answer_is_cut_off_and_the_batch_still_returns():
    """No wall-clock assertion: under load the hang takes longer to detect, but the verdicts do not change."""
    verifier = MathVerifier(workers=2, timeout_seconds=2, progress=False)
    try:
        responses = [r"\boxed{9^{9^{9^{9}}}}", r"\boxed{3}", r"#### 4", "no answer"]
        got = rewards(verifier, responses, ["3", "3", "4", "4"])
        assert got == [0.0, 1.0, 1.0, 0.0]
        assert verifier.outcomes["timeout"] == 1 and verifier.outcomes["no_answer"] == 1
        # the pool recovered: the killed worker was replaced and scoring goes on
        assert rewards(verifier, [r"\boxed{\frac{1}{2}}", r"\boxed{x^2}"], ["0.5", "x*x"]) == [1.0, 1.0]
        assert verifier._pool.killed == 1
    finally:
        verifier.close()


def test_distinct_outcomes_and_cache():
    verifier = MathVerifier(workers=0, progress=False)
    rewards(verifier, [r"\boxed{2}", r"\boxed{3}", "nothing here", r"\boxed{2}", "<think>unfinished"], ["2", "2", "2", "", "2"])
    assert verifier.outcomes["correct"] == 1 and verifier.outcomes["wrong"] == 1
    assert verifier.outcomes["no_answer"] == 2 and verifier.outcomes["invalid_gold"] == 1
    cached = len(verifier._cache)
    rewards(verifier, [r"The result: \boxed{2}"], ["2"])  # same (answer, gold): served from the cache
    assert len(verifier._cache) == cached and verifier.outcomes["correct"] == 2


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        (r"<think>maybe \boxed{1}</think> Final: \boxed{2}", "2"),
        ("<think>still thinking about \\boxed{1}", None),
        (r"\boxed{1} and \boxed{2} and \boxed{3}", "1, 2, 3"),
        (r"\boxed{(1, 2)}, \boxed{(2, 1)}", "(1, 2), (2, 1)"),
        (r"I think \boxed{7} but wait \boxed{8}", "8"),
        (r"\boxed{\textbf{(073)}}", "073"),
        ("The final answer is $10,455$. I hope it is correct.", "10455"),
        ("The angle is [90].", "90"),
        (r"worth $\boxed{\$16386.17}$ <|im_end|>", "16386.17"),
    ],
)
def test_extraction(response, answer):
    assert extract_answer(response) == answer


def test_strip_reasoning_removes_special_tokens():
    assert strip_reasoning("x<|im_end|>") == "x"
