"""GeneratedTask: a prompt source whose problems a seeded generator makes, with difficulty levels.

Subclass it and write one method, ``make(rng, level) -> (problem, answer, solution)``; the base class
does the rest the built-in :class:`~gvmlit.data.ArithmeticTask` needs too: distinct problems, spread
evenly over the levels, train and validation splits from separate seeds that never share a problem,
and records carrying ``meta["level"]`` and ``meta["solution"]`` (the demonstration SFT trains on).
docs/extending.md builds a new task this way.
"""

from __future__ import annotations

import random
from abc import abstractmethod

from gvmlit.data.sources import PromptSource
from gvmlit.errors import GvmlitError
from gvmlit.records import PromptRecord

#: tries to draw a problem not seen yet before a level counts as exhausted
ATTEMPTS = 200


class GeneratedTask(PromptSource):
    """A seeded, generated task with graded difficulty. Records are named ``<name>-<split>-<i>``
    (``name``: a class attribute, the class name in lower case unless set).

    Args:
        num_train: number of training problems.
        num_val: number of held-out problems (``val`` and ``test`` splits).
        num_levels: number of difficulty levels ``make`` knows (0 … num_levels − 1).
        seed: generator seed; the same seed gives the same problems on every machine.
    """

    name: str = ""

    def __init__(self, num_train: int = 2000, num_val: int = 120, num_levels: int = 1, seed: int = 0) -> None:
        if num_train < 0 or num_val < 0 or num_levels < 1:
            raise GvmlitError(f"{type(self).__name__} needs num_train ≥ 0, num_val ≥ 0 and num_levels ≥ 1")
        self.num_train, self.num_val, self.num_levels, self.seed = num_train, num_val, num_levels, seed
        self._splits: dict[str, list[PromptRecord]] | None = None

    @abstractmethod
    def make(self, rng: random.Random, level: int) -> tuple[str, str, str]:
        """One problem of difficulty ``level``: (problem text, reference answer, worked solution)."""

    def records(self, split: str) -> list[PromptRecord]:
        if split not in ("train", "val", "test"):
            raise ValueError(f"{type(self).__name__} has splits 'train', 'val' and 'test', not {split!r}")
        if self._splits is None:
            val = self._generate(self.num_val, "val", exclude=set())
            self._splits = {"val": val, "train": self._generate(self.num_train, "train", {r.problem for r in val})}
        return self._splits["val" if split == "test" else split]  # the held-out split serves both

    def _generate(self, count: int, split: str, exclude: set[str]) -> list[PromptRecord]:
        """``count`` distinct problems, cycling through the levels; a level with no fresh problem left
        (e.g. the 100 one-digit sums) is skipped from then on."""
        name = self.name or type(self).__name__.lower()
        rng = random.Random(f"gvmlit-{name}-{split}-{self.seed}")
        records: list[PromptRecord] = []
        seen, open_levels, turn = set(exclude), list(range(self.num_levels)), 0
        while len(records) < count:
            if not open_levels:
                raise GvmlitError(f"{type(self).__name__} cannot draw {count} distinct {split} problems from its levels")
            level = open_levels[turn % len(open_levels)]
            for _ in range(ATTEMPTS):
                problem, answer, solution = self.make(rng, level)
                if problem not in seen:
                    break
            else:
                open_levels.remove(level)
                continue
            turn += 1
            seen.add(problem)
            meta = {"level": level + 1, "solution": solution, "source": f"{name} {split} {len(records)}"}
            records.append(PromptRecord(f"{name}-{split}-{len(records)}", problem, answer, meta))
        return records
