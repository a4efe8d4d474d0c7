"""Metrics: mean@k, unbiased pass@k and maj@k as pure functions and as torchmetrics classes that sync across
ranks (held-out evaluation), and what an epoch of rollouts looked like."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from math import comb

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from gvmlit.records import OUTCOMES, Completion


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al., 2021): 1 − C(n−c, k) / C(n, k) for c correct out of n samples."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 ≤ c ≤ n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 ≤ k ≤ n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean_at_k(correct: np.ndarray) -> float:
    """mean@k: the average correctness over all k samples of all problems ([problems, k] 0/1 array)."""
    correct = np.asarray(correct, dtype=np.float64)
    return float(correct.mean()) if correct.size else 0.0


def acceptance_rates(accepted: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-prompt acceptance rate accepted_i / n_i; NaN where n_i = 0."""
    accepted = np.asarray(accepted, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, accepted / np.maximum(counts, 1), np.nan)


def maj_at_k(answers: list, correct: list[float], k: int) -> float:
    """maj@k: 1 if the most frequent answer among the first k samples is correct, else 0.

    ``answers[j]`` is the canonical answer of sample j (None = no answer, never a vote);
    ``correct[j]`` its 0/1 correctness. Ties go to the answer seen first.
    """
    if not 1 <= k <= len(answers):
        raise ValueError(f"need 1 ≤ k ≤ {len(answers)}, got {k}")
    votes: dict = {}
    first_correct: dict = {}
    for answer, ok in zip(answers[:k], correct[:k]):
        if answer is None:
            continue
        votes[answer] = votes.get(answer, 0) + 1
        first_correct.setdefault(answer, float(ok))
    if not votes:
        return 0.0
    winner = max(votes, key=lambda a: votes[a])  # dicts keep insertion order: ties → first seen
    return first_correct[winner]


class ProblemAverage(Metric):
    """The mean over problems of a per-problem score (``update`` takes one score per problem), with its
    sums synced across ranks by torchmetrics when computed: ranks may hold different numbers of problems,
    and the result is the mean over all of them, each counted once."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("problems", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def _add(self, scores) -> None:
        scores = torch.as_tensor(np.asarray(scores, dtype=np.float64), device=self.total.device)
        self.total += scores.sum()
        self.problems += scores.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.problems.clamp(min=1.0)

    def problem_count(self) -> float:
        """Problems seen on all ranks (a collective under several processes)."""
        with self.sync_context():
            return float(self.problems)


class GreedyAccuracy(ProblemAverage):
    """Greedy pass@1: the share of problems whose greedy answer is correct (``update(correct [P])``)."""

    def update(self, correct) -> None:
        self._add(correct)


class MeanAtK(ProblemAverage):
    """mean@n: the average correctness of n samples per problem (``update(correct [P, n])``)."""

    def update(self, correct) -> None:
        self._add(np.asarray(correct, dtype=np.float64).mean(axis=1))


class PassAtK(ProblemAverage):
    """Unbiased pass@k (Chen et al., 2021) from n ≥ k samples per problem (``update(correct [P, n])``)."""

    def __init__(self, k: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.k = k

    def update(self, correct) -> None:
        correct = np.asarray(correct, dtype=np.int64)
        self._add([pass_at_k(correct.shape[1], int(c), self.k) for c in correct.sum(axis=1)])


class MajAtK(ProblemAverage):
    """maj@k: the most frequent answer among the first k samples is correct (``update(answers [P][n],
    correct [P, n])``; no-answers never vote)."""

    def __init__(self, k: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.k = k

    def update(self, answers, correct) -> None:
        self._add([maj_at_k(a, list(c), self.k) for a, c in zip(answers, np.asarray(correct).tolist())])


class ProblemOutcomes(Metric):
    """Per problem of an evaluation: its position in the split, how many of its k samples were correct,
    and whether its greedy answer was — concatenated across ranks by torchmetrics when computed (ranks may
    hold different numbers of problems, none at all included)."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("position", "correct", "greedy"):  # lists of 1-D float tensors (exact below 2^24)
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, positions, correct, greedy) -> None:
        for name, values in (("position", positions), ("correct", correct), ("greedy", greedy)):
            getattr(self, name).append(torch.as_tensor(np.asarray(values, dtype=np.float32), device=self.device).reshape(-1))

    def compute(self) -> torch.Tensor:
        """[P, 3] integer rows of (position, correct, greedy correct), in the split's order."""
        columns = [dim_zero_cat(getattr(self, n)) if len(getattr(self, n)) else torch.zeros(0) for n in ("position", "correct", "greedy")]
        rows = torch.stack([c.reshape(-1) for c in columns], dim=1).round().long()
        return rows[torch.argsort(rows[:, 0])]


class EvaluationCost(Metric):
    """The samples and response tokens an evaluation generated, summed across ranks when computed."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("samples", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, samples: int, tokens: int) -> None:
        self.samples += int(samples)
        self.tokens += int(tokens)

    def compute(self) -> tuple[int, int]:
        return int(self.samples), int(self.tokens)


class BenchmarkMetrics:
    """Per benchmark: greedy accuracy, and with n samples mean@n, pass@k and maj@k for each k — torchmetrics
    ``Metric`` objects that sync across ranks when computed. ``table()`` gives
    ``{benchmark: {"accuracy", "mean@n", "pass@k"…, "maj@k"…, "problems"}}``, plus ``average`` (the mean
    over benchmarks, ``macro``, or over all problems, ``micro``) when there are several benchmarks."""

    def __init__(self, benchmarks: list[str], samples: int, ks: list[int], average: str = "macro", device=None) -> None:
        self.samples, self.ks, self.average = samples, [k for k in ks if 1 <= k <= samples], average
        self.metrics: dict[str, dict[str, ProblemAverage]] = {}
        for name in benchmarks:
            entry: dict[str, ProblemAverage] = {"accuracy": GreedyAccuracy()}
            if samples:
                entry[f"mean@{samples}"] = MeanAtK()
                for k in self.ks:
                    entry[f"pass@{k}"], entry[f"maj@{k}"] = PassAtK(k), MajAtK(k)
            self.metrics[name] = {key: metric.to(device) if device is not None else metric for key, metric in entry.items()}

    def update(self, benchmarks: list[str], greedy, sampled=None, answers=None) -> None:
        """One batch of problems: their benchmark names, greedy correctness [P], sampled correctness [P, n]
        and canonical answers [P][n]."""
        greedy = np.asarray(greedy)
        for name in dict.fromkeys(benchmarks):
            if name not in self.metrics:
                raise KeyError(f"benchmark {name!r} is not among {list(self.metrics)}")
            rows = [i for i, b in enumerate(benchmarks) if b == name]
            entry = self.metrics[name]
            entry["accuracy"].update(greedy[rows])
            if self.samples and sampled is not None:
                block = np.asarray(sampled)[rows]
                for key, metric in entry.items():
                    if key.startswith("maj@"):
                        metric.update([answers[i] for i in rows], block)
                    elif key != "accuracy":
                        metric.update(block)

    def table(self) -> dict[str, dict[str, float]]:
        """The synced metrics (a collective under several processes: every rank calls it)."""
        table: dict[str, dict[str, float]] = {}
        for name, entry in self.metrics.items():
            table[name] = {key: float(metric.compute()) for key, metric in entry.items()}
            table[name] = {"problems": entry["accuracy"].problem_count(), **table[name]}
        if len(table) > 1:
            names = list(table)
            keys = [k for k in table[names[0]] if k != "problems"]
            weights = np.array([table[b]["problems"] for b in names]) if self.average == "micro" else np.ones(len(names))
            table["average"] = {k: float(np.average([table[b][k] for b in names], weights=weights)) for k in keys}
            table["average"]["problems"] = float(sum(table[b]["problems"] for b in names))
        return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    """A Markdown table of :func:`evaluation_metrics` output, one row per benchmark."""
    columns = [c for c in next(iter(table.values())) if c != "problems"]
    lines = ["| benchmark | problems | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for name, entry in table.items():
        cells = " | ".join(f"{100 * entry.get(c, float('nan')):.1f}" for c in columns)
        lines.append(f"| {name} | {int(entry['problems'])} | {cells} |")
    return "\n".join(lines)


def rollout_metrics(groups: Sequence[Sequence[Completion]], accepted: Sequence[Sequence[bool]]) -> dict[str, float]:
    """What one epoch's trained-on samples looked like (``groups[i]``: the samples of prompt i).

    ``rollout/acceptance_rate`` is accepted / generated over all samples (not a mean over prompts).
    """
    sizes = np.array([len(g) for g in groups])
    hits = np.array([sum(a) for a in accepted])
    samples = [c for g in groups for c in g]
    sampled = sizes > 0
    rates = acceptance_rates(hits, sizes)[sampled]
    total = int(sizes.sum())
    return {
        "rollout/samples": float(total),
        "rollout/accepted": float(hits.sum()),
        "rollout/acceptance_rate": float(hits.sum() / total) if total else 0.0,
        "rollout/reward": float(np.mean([c.reward for c in samples])) if samples else 0.0,
        "rollout/prompts_all_accepted": float(np.mean(rates == 1.0)) if rates.size else 0.0,
        "rollout/prompts_none_accepted": float(np.mean(rates == 0.0)) if rates.size else 0.0,
        "rollout/prompts_without_samples": float(np.mean(~sampled)) if sizes.size else 0.0,
        "rollout/response_length": float(np.mean([len(c.token_ids) for c in samples])) if samples else 0.0,
        "rollout/truncated": float(np.mean([c.finish_reason == "length" for c in samples])) if samples else 0.0,
    }


def outcome_metrics(groups: Sequence[Sequence[Completion]]) -> dict[str, float]:
    """How many answers of each verifier outcome (``verifier/timeout``, ``verifier/error``, …)."""
    counts = Counter(c.outcome for g in groups for c in g)
    return {f"verifier/{outcome}": float(counts[outcome]) for outcome in OUTCOMES}


def allocation_metrics(allocation, trained: Sequence[int]) -> dict[str, float]:
    """How the allocator spread the budget.

    ``trained[i]``: the samples prompt i is trained on this epoch (main draw + kept pilots) — what
    allocators' per-prompt bounds apply to.
    Logs the spread of ``trained``, the prompts that got no sample to train on (starved: a discarded pilot
    does not count — GVM's prompts with pilots and no main draw are starved), those that got a single
    one (no GRPO baseline), p̂ at the extremes, and the allocator's own metrics (``allocation/<name>``).
    """
    trained = np.asarray(trained, dtype=np.int64)
    metrics = {
        "allocation/samples_min": float(trained.min()) if trained.size else 0.0,
        "allocation/samples_max": float(trained.max()) if trained.size else 0.0,
        "allocation/samples_std": float(trained.std()) if trained.size else 0.0,
        "allocation/prompts_starved": float(np.mean(trained == 0)) if trained.size else 0.0,
        "allocation/singleton_prompts": float(np.mean(trained == 1)) if trained.size else 0.0,
    }
    if allocation.acceptance_rate is not None and len(allocation.acceptance_rate):
        p_hat = np.asarray(allocation.acceptance_rate)
        metrics["allocation/estimated_p_zero"] = float(np.mean(p_hat == 0.0))
        metrics["allocation/estimated_p_one"] = float(np.mean(p_hat == 1.0))
    metrics.update({f"allocation/{name}": float(value) for name, value in allocation.metrics.items()})
    return metrics
