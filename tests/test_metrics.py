"""Evaluation metrics against hand computations."""

from math import comb

import numpy as np
import pytest

from gvmlit.metrics import BenchmarkMetrics, EvaluationCost, ProblemOutcomes, format_table, maj_at_k, mean_at_k, pass_at_k


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(10, 0, 1) == 0.0  # c = 0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - comb(7, 2) / comb(10, 2))  # 1 − 21/45
    assert pass_at_k(5, 1, 5) == 1.0  # k = n: any correct sample counts
    assert pass_at_k(5, 0, 5) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0  # n − c < k
    # it is not "max over the first k": 1 correct of 4, k = 2 → 1 − C(3,2)/C(4,2) = 0.5
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_mean_and_maj_at_k():
    assert mean_at_k(np.array([[1, 0, 0, 1], [0, 0, 0, 0]])) == pytest.approx(0.25)
    # answers 5,5,7,7 → tie → first seen (5), which is wrong here
    assert maj_at_k(["5", "7", "5", "7"], [0, 1, 0, 1], 4) == 0.0
    assert maj_at_k(["7", "5", "7", None], [1, 0, 1, 0], 4) == 1.0
    assert maj_at_k(["5", "7", "7"], [0, 1, 1], 1) == 0.0  # k = 1: the first sample decides
    assert maj_at_k([None, None], [0, 0], 2) == 0.0
    assert maj_at_k([None, "3", None], [0, 1, 0], 3) == 1.0  # no-answers never vote


def test_evaluation_metrics_per_benchmark_and_average():
    greedy = np.array([1, 0, 1, 1])
    sampled = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    answers = [["2", "2", "3"], ["1", None, "4"], ["6", "5", "5"], ["8", "9", "7"]]
    metrics = BenchmarkMetrics(["a", "b"], samples=3, ks=[1, 3])
    metrics.update(["a", "a", "b"], greedy[:3], sampled[:3], answers[:3])  # two batches, as evaluation sends them
    metrics.update(["b"], greedy[3:], sampled[3:], answers[3:])
    table = metrics.table()
    assert table["a"]["accuracy"] == 0.5 and table["b"]["accuracy"] == 1.0
    assert table["a"]["mean@3"] == pytest.approx(2 / 6)
    assert table["a"]["pass@1"] == pytest.approx((2 / 3 + 0) / 2)
    assert table["a"]["pass@3"] == pytest.approx(0.5)
    assert table["a"]["maj@3"] == pytest.approx(0.5)  # "2" wins and is correct; problem 2 has no winner right
    assert table["b"]["maj@3"] == pytest.approx(0.0)  # "5" wins (wrong); 8/9/7 tie → "8" (wrong)
    assert table["average"]["accuracy"] == pytest.approx(0.75)
    assert table["average"]["problems"] == 4
    text = format_table(table)
    assert "| a | 2 | 50.0 |" in text and "| average | 4 |" in text


def test_micro_average_weighs_benchmarks_by_their_problems():
    metrics = BenchmarkMetrics(["small", "large"], samples=0, ks=[], average="micro")
    metrics.update(["small"], np.array([1.0]))
    metrics.update(["large"] * 3, np.array([0.0, 0.0, 1.0]))
    table = metrics.table()
    assert set(table["small"]) == {"problems", "accuracy"}  # greedy only without samples
    assert table["average"]["accuracy"] == pytest.approx(2 / 4)  # micro: 2 of 4 problems (macro would give 2/3)


GREEDY = np.array([1, 0, 1, 1, 0])
SAMPLED = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1], [1, 1, 1, 0]], dtype=float)
ANSWERS = [["2", "2", "3", "4"], ["1", None, "4", "4"], ["6", "5", "5", "6"], ["8", "9", "7", "7"], ["3", "3", "3", "1"]]
NAMES = ["a", "a", "b", "b", "b"]


def _synced_table(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        rows = [0, 1, 2] if rank == 0 else [3, 4]  # uneven shards: the last rank holds fewer problems
        metrics = BenchmarkMetrics(["a", "b"], samples=4, ks=[1, 2, 4], average="micro")
        metrics.update([NAMES[i] for i in rows], GREEDY[rows], SAMPLED[rows], [ANSWERS[i] for i in rows])
        results[rank] = metrics.table()
        for case, held in enumerate((rows, rows if rank == 0 else [])):  # then a rank with no problems at all
            outcomes, cost = ProblemOutcomes(), EvaluationCost()
            outcomes.update(held[::-1], SAMPLED[held[::-1]].sum(axis=1), GREEDY[held[::-1]])  # order restored by compute
            cost.update(4 * len(held), 10 * len(held) + rank)
            results[f"outcomes{rank}:{case}"] = (outcomes.compute().tolist(), cost.compute())
    finally:
        dist.destroy_process_group()


def test_metrics_synced_over_two_ranks_with_uneven_shards_equal_the_single_process_values():
    import socket

    import torch.multiprocessing as mp

    alone = BenchmarkMetrics(["a", "b"], samples=4, ks=[1, 2, 4], average="micro")
    alone.update(NAMES, GREEDY, SAMPLED, ANSWERS)
    expected = alone.table()
    assert expected["b"]["problems"] == 3 and expected["average"]["accuracy"] == pytest.approx(3 / 5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").Manager().dict()
    mp.start_processes(_synced_table, args=(port, results), nprocs=2, start_method="spawn")
    for rank in (0, 1):
        for benchmark, row in expected.items():
            assert results[rank][benchmark] == pytest.approx(row), (rank, benchmark)
    # per-problem outcomes (position, correct of 4, greedy) concatenated in the split's order, costs summed
    every = [[i, int(SAMPLED[i].sum()), int(GREEDY[i])] for i in range(5)]
    first = [[i, int(SAMPLED[i].sum()), int(GREEDY[i])] for i in range(3)]
    found = sorted(v for k, v in results.items() if isinstance(k, str))
    assert found == sorted([(every, (20, 51))] * 2 + [(first, (12, 31))] * 2)
