"""RolloutCollector on its own: exactly n_i scored completions per prompt, acceptance decided once, every
sample and token counted under its purpose, and a run of verifier faults stopped in one line."""

import pytest
import torch

from gvmlit.collector import Budget, RolloutCollector
from gvmlit.errors import GvmlitError
from gvmlit.records import Prompt, PromptRecord, Verdict
from gvmlit.sampling import HFSampler
from gvmlit.verifiers import ArithmeticVerifier, Verifier


class Faulty(Verifier):
    """Raises on every answer (each costs an ``error`` outcome)."""

    def score_one(self, response, record):
        raise ValueError("broken check")


class HalfCredit(Verifier):
    """Reward 0.5 for everything: accepted only if the threshold allows it."""

    def score_one(self, response, record):
        return Verdict(0.5, "correct")


def _prompts(tokenizer, problems=("1+2=", "30+4=", "7+7+7=")):
    return [Prompt(PromptRecord(f"p{i}", p[:-1], str(eval(p[:-1]))), tokenizer(p)["input_ids"]) for i, p in enumerate(problems)]


def test_exact_counts_acceptance_and_every_token_counted(tiny_policy):
    model, tokenizer = tiny_policy
    budget = Budget()
    collector = RolloutCollector(HFSampler(max_new_tokens=6, progress=False), ArithmeticVerifier(progress=False), tokenizer, budget)
    torch.manual_seed(0)
    groups = collector.collect(model, _prompts(tokenizer), [3, 0, 2], "pilot")
    assert [len(g) for g in groups] == [3, 0, 2]
    assert all(c.outcome in ("correct", "wrong", "no_answer") and c.accepted == (c.reward >= 1.0) for g in groups for c in g)
    tokens = sum(len(c.token_ids) for g in groups for c in g)
    assert budget.samples("pilot") == 5 and budget.tokens("pilot") == tokens and budget.samples("train", "eval") == 0
    collector.collect(model, _prompts(tokenizer), [1, 1, 1], "train")
    assert budget.training_samples == 8 and budget.local["train"].samples == 3  # one process: local = total


def test_acceptance_follows_the_threshold(tiny_policy):
    model, tokenizer = tiny_policy
    strict = RolloutCollector(HFSampler(max_new_tokens=4, progress=False), HalfCredit(progress=False, workers=0), tokenizer, Budget())
    lenient = RolloutCollector(HFSampler(max_new_tokens=4, progress=False), HalfCredit(progress=False, workers=0), tokenizer, Budget(), acceptance_threshold=0.5)
    assert not any(c.accepted for g in strict.collect(model, _prompts(tokenizer), [2, 2, 2], "train") for c in g)
    assert all(c.accepted for g in lenient.collect(model, _prompts(tokenizer), [2, 2, 2], "train") for c in g)


def test_a_collection_of_mostly_faults_stops_in_one_line(tiny_policy):
    model, tokenizer = tiny_policy
    collector = RolloutCollector(HFSampler(max_new_tokens=4, progress=False), Faulty(progress=False, workers=0), tokenizer, Budget(), max_fault_fraction=0.5)
    with pytest.raises(GvmlitError, match=r"Faulty failed on 4 of 4 train answers \(4 error\); last error: .*broken check.*max_fault_fraction=0.5"):
        collector.collect(model, _prompts(tokenizer)[:2], [2, 2], "train")
    assert collector.budget.samples("train") == 4  # what was generated is counted all the same
