"""Prompt sources: where the problems and their reference answers come from.

A source yields :class:`PromptRecord` lists per split (``train``, ``val``). Sources are chosen in YAML
by ``class_path``: the built-in :class:`~gvmlit.data.arithmetic.ArithmeticTask`, or
:class:`JsonlPrompts` for local JSON-lines files.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path

from jsonargparse.typing import path_type

from gvmlit.errors import GvmlitError
from gvmlit.records import PromptRecord

#: a readable file; in a recipe a relative path is resolved relative to the recipe file
InputFile = path_type("fr")


class PromptSource(ABC):
    """Provides the prompt records of each split."""

    @abstractmethod
    def records(self, split: str) -> list[PromptRecord]:
        """The records of ``split`` (``"train"``, ``"val"`` or ``"test"``), in a fixed order."""


def read_jsonl(path: str | os.PathLike, problem_key: str = "problem", answer_key: str = "answer") -> list[PromptRecord]:
    """Read problems from a JSON-lines file; a bad row raises an error naming the file and row."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise GvmlitError(f"prompt file {str(path)!r} does not exist")
    records = []
    with path.open("rb") as f:
        for row_number, raw in enumerate(f, start=1):
            where = f"{path}:{row_number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise GvmlitError(f"{where}: not UTF-8 text (byte {err.start + 1} of the row is {raw[err.start:err.start + 1]!r})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise GvmlitError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise GvmlitError(f"{where}: expected a JSON object, got {type(row).__name__}")
            for key in (problem_key, answer_key):
                if key not in row or row[key] is None or str(row[key]).strip() == "":
                    raise GvmlitError(
                        f"{where}: row has no {key!r} (keys present: {', '.join(sorted(row)) or 'none'})"
                    )
            meta = {k: v for k, v in row.items() if k not in (problem_key, answer_key)}
            meta["source"] = where
            uid = str(row.get("unique_id", row.get("id", f"{path.stem}-{row_number}")))
            records.append(PromptRecord(uid=uid, problem=str(row[problem_key]), answer=str(row[answer_key]), meta=meta))
    if not records:
        raise GvmlitError(f"prompt file {str(path)!r} holds no rows")
    return records


class JsonlPrompts(PromptSource):
    """Problems from local JSON-lines files (one object per line).

    Args:
        train_file: training prompts (in a recipe: relative to the recipe file).
        val_file: held-out prompts for validation; defaults to none (validation is skipped).
        test_file: prompts for ``gvmlit test``; defaults to ``val_file``.
        problem_key: field holding the problem text.
        answer_key: field holding the reference answer.
    """

    def __init__(
        self,
        train_file: InputFile | None = None,
        val_file: InputFile | None = None,
        test_file: InputFile | None = None,
        problem_key: str = "problem",
        answer_key: str = "answer",
    ) -> None:
        self.files = {"train": train_file, "val": val_file, "test": test_file or val_file}
        self.problem_key = problem_key
        self.answer_key = answer_key
        self._cache: dict[str, list[PromptRecord]] = {}

    def records(self, split: str) -> list[PromptRecord]:
        if split not in self.files:
            raise ValueError(f"JsonlPrompts has splits 'train', 'val' and 'test', not {split!r}")
        if self.files[split] is None:
            return []
        if split not in self._cache:
            self._cache[split] = read_jsonl(self.files[split], self.problem_key, self.answer_key)
        return self._cache[split]


class BenchmarkFiles(PromptSource):
    """Evaluation benchmarks, one JSON-lines file each (``problem`` / ``answer`` per line, the format of
    the paper's evaluation data). Every record carries its benchmark name; ``val`` and ``test`` are
    the union of all files, ``train`` is empty.

    Args:
        files: benchmark name → file, e.g. ``{math500: data/math500.jsonl, aime24: data/aime24.jsonl}``
            (in a recipe: relative to the recipe file).
        problem_key: field holding the problem text.
        answer_key: field holding the reference answer.
        limit: keep only the first ``limit`` problems of each file (quick checks).
    """

    def __init__(
        self, files: dict[str, InputFile], problem_key: str = "problem", answer_key: str = "answer", limit: int | None = None
    ) -> None:
        if not files:
            raise GvmlitError("BenchmarkFiles needs at least one benchmark file")
        self.files = dict(files)
        self.problem_key = problem_key
        self.answer_key = answer_key
        self.limit = limit
        self._records: list[PromptRecord] | None = None

    def records(self, split: str) -> list[PromptRecord]:
        if split == "train":
            return []
        if self._records is None:
            self._records = []
            for name, path in self.files.items():
                rows = read_jsonl(path, self.problem_key, self.answer_key)[: self.limit]
                for i, r in enumerate(rows):
                    self._records.append(PromptRecord(f"{name}-{i}", r.problem, r.answer, {**r.meta, "benchmark": name}))
        return self._records


class HFDatasetPrompts(PromptSource):
    """Problems from a Hugging Face ``datasets`` dataset: a Hub name, a local directory, or a builder
    (``json``, ``parquet``, ``csv``) with ``data_files``. Loaded lazily, on first use.

    Args:
        path: dataset name or builder (``AI-MO/NuminaMath-CoT``, ``parquet``, ``json``, a local path).
        name: dataset configuration name.
        data_files: files for a builder (a path, a list, or split → path(s)).
        train_split: split used for training (e.g. ``train`` or ``train[:5000]``).
        val_split: split used for validation (None = none).
        test_split: split used by ``gvmlit test`` (default: ``val_split``).
        problem_column: column holding the problem.
        answer_column: column holding the reference answer (or a full solution, with ``answer_from_boxed``).
        answer_from_boxed: the answer column holds a worked solution: use its last ``\\boxed{…}``.
        shuffle_seed: shuffle each split with this seed (None = keep the dataset order).
        limit: keep at most this many rows per split, after shuffling.
        bad_rows: a row without a problem or an answer: ``error`` (default, names the row) or ``skip`` (counted).
    """

    def __init__(
        self,
        path: str,
        name: str | None = None,
        data_files: str | list[str] | dict[str, str | list[str]] | None = None,
        train_split: str | None = "train",
        val_split: str | None = None,
        test_split: str | None = None,
        problem_column: str = "problem",
        answer_column: str = "answer",
        answer_from_boxed: bool = False,
        shuffle_seed: int | None = None,
        limit: int | None = None,
        bad_rows: str = "error",
    ) -> None:
        if bad_rows not in ("error", "skip"):
            raise GvmlitError(f"bad_rows must be 'error' or 'skip', got {bad_rows!r}")
        self.path, self.name, self.data_files = path, name, data_files
        self.splits = {"train": train_split, "val": val_split, "test": test_split or val_split}
        self.problem_column, self.answer_column = problem_column, answer_column
        self.answer_from_boxed = answer_from_boxed
        self.shuffle_seed, self.limit, self.bad_rows = shuffle_seed, limit, bad_rows
        self.skipped: dict[str, int] = {}
        self._cache: dict[str, list[PromptRecord]] = {}

    def records(self, split: str) -> list[PromptRecord]:
        if split not in self.splits:
            raise ValueError(f"HFDatasetPrompts has splits 'train', 'val' and 'test', not {split!r}")
        hf_split = self.splits[split]
        if hf_split is None:
            return []
        if split not in self._cache:
            self._cache[split] = self._load(hf_split)
        return self._cache[split]

    def _load(self, hf_split: str) -> list[PromptRecord]:
        import datasets

        where = f"dataset {self.path!r}" + (f" ({self.name})" if self.name else "") + f" split {hf_split!r}"
        try:
            data = datasets.load_dataset(self.path, self.name, data_files=self.data_files, split=hf_split)
        except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise GvmlitError(f"cannot load {where}: {first}") from err
        missing = [c for c in (self.problem_column, self.answer_column) if c not in data.column_names]
        if missing:
            raise GvmlitError(
                f"{where} has no column {', '.join(map(repr, missing))}; columns: {', '.join(data.column_names)}"
            )
        if self.shuffle_seed is not None:
            data = data.shuffle(seed=self.shuffle_seed)
        if self.limit is not None:
            data = data.select(range(min(self.limit, len(data))))
        from gvmlit.verifiers.math import last_boxed

        records, skipped = [], 0
        for i, row in enumerate(data):
            problem, answer = row[self.problem_column], row[self.answer_column]
            if answer is not None and self.answer_from_boxed:
                answer = last_boxed(str(answer))
            if not problem or answer is None or not str(answer).strip():
                if self.bad_rows == "skip":
                    skipped += 1
                    continue
                what = self.problem_column if not problem else self.answer_column
                raise GvmlitError(f"{where} row {i}: no {what!r}" + (" (no \\boxed{} in the solution)" if self.answer_from_boxed else "")
                                  + "; set bad_rows=skip to drop such rows")  # fmt: skip
            meta = {k: v for k, v in row.items() if k not in (self.problem_column, self.answer_column) and isinstance(v, (str, int, float))}
            records.append(PromptRecord(f"{self.path}:{hf_split}:{i}", str(problem), str(answer).strip(), {**meta, "source": f"{where} row {i}"}))
        self.skipped[hf_split] = skipped
        if skipped:
            import logging

            logging.getLogger("gvmlit").warning("skipped %d rows of %s without a problem or an answer", skipped, where)
        if not records:
            raise GvmlitError(f"{where} holds no usable rows")
        return records
