"""Prompt sources backed by Hugging Face datasets (local Parquet / JSON files only) and benchmark files."""


import datasets
import pytest

from gvmlit.data import BenchmarkFiles, HFDatasetPrompts
from gvmlit.errors import GvmlitError
from helpers import ROOT

DATA = ROOT / "tests" / "fixtures"


@pytest.fixture()
def parquet(tmp_path):
    rows = {
        "question": ["1+1", "What is 2+3?", "Compute 6/3.", "Find x: x+1=3"],
        "solution": [r"So \boxed{2}.", r"We get \boxed{5}", r"It is \boxed{2}.", "x is two"],
        "level": [1, 2, 1, 3],
    }
    path = tmp_path / "train.parquet"
    datasets.Dataset.from_dict(rows).to_parquet(str(path))
    return str(path)


def test_parquet_with_column_mapping_boxed_answers_and_skip(parquet):
    source = HFDatasetPrompts(
        "parquet", data_files={"train": parquet}, problem_column="question", answer_column="solution",
        answer_from_boxed=True, bad_rows="skip",
    )  # fmt: skip
    records = source.records("train")
    assert [r.answer for r in records] == ["2", "5", "2"]  # the last row has no \boxed{} → skipped, counted
    assert source.skipped == {"train": 1}
    assert records[1].problem == "What is 2+3?" and records[1].meta["level"] == 2
    assert source.records("val") == []


def test_bad_rows_and_columns_are_named(parquet):
    with pytest.raises(GvmlitError, match=r"row 3: no 'solution' \(no \\boxed\{\} in the solution\)"):
        HFDatasetPrompts("parquet", data_files={"train": parquet}, problem_column="question",
                         answer_column="solution", answer_from_boxed=True).records("train")  # fmt: skip
    with pytest.raises(GvmlitError, match=r"has no column 'answer'; columns: question, solution, level"):
        HFDatasetPrompts("parquet", data_files={"train": parquet}, problem_column="question").records("train")


def test_shuffle_and_limit_are_deterministic(parquet):
    make = lambda: HFDatasetPrompts("parquet", data_files={"train": parquet}, problem_column="question",  # noqa: E731
                                    answer_column="level", shuffle_seed=3, limit=3)  # fmt: skip
    a, b = make().records("train"), make().records("train")
    assert [r.problem for r in a] == [r.problem for r in b] and len(a) == 3


def test_benchmark_files_tag_each_record():
    source = BenchmarkFiles({"math500": str(DATA / "math500_mini.jsonl"), "aime24": str(DATA / "aime24_mini.jsonl")}, limit=4)
    records = source.records("test")
    assert [r.meta["benchmark"] for r in records] == ["math500"] * 4 + ["aime24"] * 4
    assert source.records("train") == [] and records[0].answer
