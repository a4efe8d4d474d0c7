"""Prompt sources: where the problems and their reference answers come from.

A source yields :class:`PromptRecord` lists per split (``train``, ``val``). Sources are chosen in YAML
by ``class_path``: the built-in :class:`~gvmlit.data.arithmetic.ArithmeticTask`, or
:class:`JsonlPrompts` for local JSON-lines files.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

from gvmlit.data.records import PromptRecord
from gvmlit.errors import GvmlitError


class PromptSource(ABC):
    """Provides the prompt records of each split."""

    @abstractmethod
    def records(self, split: str) -> list[PromptRecord]:
        """The records of ``split`` (``"train"``, ``"val"`` or ``"test"``), in a fixed order."""


def read_jsonl(path: str | Path, problem_key: str = "problem", answer_key: str = "answer") -> list[PromptRecord]:
    """Read problems from a JSON-lines file; a bad row raises an error naming the file and row."""
    path = Path(path)
    if not path.is_file():
        raise GvmlitError(f"prompt file {str(path)!r} does not exist")
    records = []
    with path.open(encoding="utf-8") as f:
        for row_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{row_number}"
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
        train_file: training prompts.
        val_file: held-out prompts for validation; defaults to none (validation is skipped).
        test_file: prompts for ``gvmlit test``; defaults to ``val_file``.
        problem_key: field holding the problem text.
        answer_key: field holding the reference answer.
    """

    def __init__(
        self,
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
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
        files: benchmark name → file, e.g. ``{math500: data/math500.jsonl, aime24: data/aime24.jsonl}``.
        problem_key: field holding the problem text.
        answer_key: field holding the reference answer.
        limit: keep only the first ``limit`` problems of each file (quick checks).
    """

    def __init__(
        self, files: dict[str, str], problem_key: str = "problem", answer_key: str = "answer", limit: int | None = None
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
