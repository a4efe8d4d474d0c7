"""Metrics as pure functions: mean@k, unbiased pass@k, maj@k, and what an epoch of rollouts looked like."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from math import comb

import numpy as np

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


def evaluation_metrics(
    greedy: np.ndarray,
    sampled: np.ndarray | None,
    answers: list[list] | None,
    groups: list[str],
    ks: list[int] | None = None,
    average: str = "macro",
) -> dict[str, dict[str, float]]:
    """Per-group (benchmark) and averaged evaluation metrics.

    Args:
        greedy: [P] 0/1 greedy correctness per problem.
        sampled: [P, n] 0/1 correctness of n samples per problem (or None).
        answers: [P][n] canonical answers of the samples (for maj@k).
        groups: [P] benchmark name of each problem.
        ks: the k of pass@k and maj@k (default: 1 and n).
        average: with several benchmarks, the ``average`` row is the unweighted mean over benchmarks
            (``macro``, as papers report their five-benchmark average) or over all problems (``micro``).
    Returns:
        {benchmark: {"accuracy", "mean@n", "pass@k"…, "maj@k"…, "problems"}}, plus ``average`` when
        there are several benchmarks.
    """
    table: dict[str, dict[str, float]] = {}
    names = list(dict.fromkeys(groups))
    n = 0 if sampled is None else sampled.shape[1]
    ks = sorted({k for k in (ks or [1, n]) if 1 <= k <= n})
    for name in names:
        rows = [i for i, g in enumerate(groups) if g == name]
        entry = {"problems": float(len(rows)), "accuracy": float(np.mean(greedy[rows]))}
        if n:
            block = sampled[rows]
            entry[f"mean@{n}"] = mean_at_k(block)
            for k in ks:
                entry[f"pass@{k}"] = float(np.mean([pass_at_k(n, int(c), k) for c in block.sum(1)]))
                if answers is not None:
                    entry[f"maj@{k}"] = float(np.mean([maj_at_k(answers[i], sampled[i].tolist(), k) for i in rows]))
        table[name] = entry
    if len(names) > 1:
        keys = [k for k in table[names[0]] if k != "problems"]
        weights = np.array([table[b]["problems"] for b in names]) if average == "micro" else np.ones(len(names))
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


def allocation_metrics(allocation, trained: Sequence[int], pilots: Sequence[int]) -> dict[str, float]:
    """How the allocator spread the budget.

    ``trained[i]``: the samples prompt i is trained on this epoch (main draw + kept pilots) — what
    allocators' per-prompt bounds apply to; ``pilots[i]``: the pilots drawn for it, kept or not.
    Logs the spread of ``trained``, the prompts that got no sample at all (starved) or a single one
    (no GRPO baseline), p̂ at the extremes, and the allocator's own metrics (``allocation/<name>``).
    """
    trained = np.asarray(trained, dtype=np.int64)
    generated = np.asarray(allocation.samples, dtype=np.int64) + np.asarray(pilots, dtype=np.int64)
    metrics = {
        "allocation/samples_min": float(trained.min()) if trained.size else 0.0,
        "allocation/samples_max": float(trained.max()) if trained.size else 0.0,
        "allocation/samples_std": float(trained.std()) if trained.size else 0.0,
        "allocation/prompts_starved": float(np.mean(generated == 0)) if generated.size else 0.0,
        "allocation/singleton_prompts": float(np.mean(trained == 1)) if trained.size else 0.0,
    }
    if allocation.acceptance_rate is not None and len(allocation.acceptance_rate):
        p_hat = np.asarray(allocation.acceptance_rate)
        metrics["allocation/estimated_p_zero"] = float(np.mean(p_hat == 0.0))
        metrics["allocation/estimated_p_one"] = float(np.mean(p_hat == 1.0))
    metrics.update({f"allocation/{name}": float(value) for name, value in allocation.metrics.items()})
    return metrics
