"""Held-out evaluation: greedy and sampled answers of each rank's own problems, metrics synced across ranks.

Evaluation is sharded by problem: the data module gives every rank a contiguous share of the held-out
problems (the last ranks may have fewer, none repeated), each rank generates and verifies its own with
the collector's ``across_ranks=False``, and the :class:`~gvmlit.metrics.BenchmarkMetrics` — torchmetrics
``Metric`` objects — sum the ranks' counts when computed. The collectives of an evaluation happen once at
its start (the policy replica, an engine's weight sync) and once at its end (the metrics), never per
batch, so ranks with different numbers of batches cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gvmlit.algorithms.settings import EvaluationSettings
from gvmlit.collector import RolloutCollector
from gvmlit.metrics import BenchmarkMetrics, EvaluationCost, ProblemOutcomes
from gvmlit.records import Prompt
from gvmlit.sampling import Sampler


@dataclass
class Evaluation:
    """One evaluation of the policy: per-benchmark metrics at ``step``, after ``samples`` generated
    training samples (pilots included)."""

    stage: Literal["val", "test"]
    step: int
    samples: int
    table: dict[str, dict[str, float]]
    average: Literal["macro", "micro"]
    outcomes: list[dict] = field(default_factory=list)  # per problem: id, benchmark, correct (of k), k, greedy_correct

    @property
    def summary(self) -> dict[str, float]:
        """The headline metrics: the average row with several benchmarks, else the only one."""
        return {k: v for k, v in self.table.get("average", next(iter(self.table.values()))).items() if k != "problems"}


class Evaluator:
    """Scores held-out problems batch by batch and turns them into an :class:`Evaluation`.

    Args:
        settings: samples per problem, the k of pass@k / maj@k, the benchmark average.
    """

    def __init__(self, settings: EvaluationSettings) -> None:
        self.settings = settings
        self.metrics: BenchmarkMetrics | None = None
        self.outcomes = ProblemOutcomes()
        self.cost = EvaluationCost()
        self._problems: list[Prompt] = []
        self._position: dict[str, int] = {}

    def start(self, problems: list[Prompt], device=None) -> None:
        """Before an evaluation of ``problems`` (the whole split; each rank scores its own share)."""
        benchmarks = list(dict.fromkeys(benchmark_of(p) for p in problems))
        self.metrics = BenchmarkMetrics(benchmarks, self.settings.samples, self.settings.pass_ks, self.settings.benchmark_average, device)
        self._problems, self._position = problems, {p.record.uid: i for i, p in enumerate(problems)}
        for metric in (self.outcomes, self.cost):
            metric.reset()
            if device is not None:
                metric.to(device)

    def count(self, samples: int, tokens: int) -> None:
        """What this rank's share of the evaluation generated."""
        self.cost.update(samples, tokens)

    def score(self, collector: RolloutCollector, policy, prompts: list[Prompt], sampler: Sampler) -> None:
        """Greedy and sampled correctness of ``prompts`` (this rank's), into the metrics."""
        greedy = collector.collect(policy, prompts, [1] * len(prompts), "eval", greedy=True, sampler=sampler, across_ranks=False)
        sampled = answers = None
        if self.settings.samples > 0:
            groups = collector.collect(policy, prompts, [self.settings.samples] * len(prompts), "eval", sampler=sampler, across_ranks=False)
            sampled = np.array([[c.outcome == "correct" for c in g] for g in groups], dtype=np.float64)
            answers = [[collector.verifier.extract(c.text) for c in g] for g in groups]
        greedy_correct = np.array([g[0].outcome == "correct" for g in greedy], dtype=np.float64)
        self.metrics.update([benchmark_of(p) for p in prompts], greedy_correct, sampled, answers)
        # per problem, so that anyone can re-analyse a run without rerunning it
        correct = sampled.sum(axis=1) if sampled is not None else np.zeros(len(prompts))
        self.outcomes.update([self._position[p.record.uid] for p in prompts], correct, greedy_correct)

    def finish(self, stage: Literal["val", "test"], step: int, samples: int) -> Evaluation:
        """The evaluation (a collective under several processes: every rank calls it)."""
        k = self.settings.samples
        outcomes = [
            {"id": (p := self._problems[int(i)]).record.uid, "benchmark": benchmark_of(p), "correct": int(c), "k": k, "greedy_correct": bool(g)}
            for i, c, g in self.outcomes.compute().tolist()
        ]  # fmt: skip
        return Evaluation(stage, step, samples, self.metrics.table(), self.settings.benchmark_average, outcomes)


def benchmark_of(prompt: Prompt) -> str:
    """The benchmark a held-out problem belongs to (``val`` when its record names none)."""
    return prompt.record.meta.get("benchmark", "val")
