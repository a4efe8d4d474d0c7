"""GeneratedTask: a prompt source whose problems a seeded generator makes, with difficulty levels.

Subclass it and write one method, ``make(rng, level) -> (problem, answer, solution)``; the base class
does the rest the built-in :class:`~gvmlit.data.ArithmeticTask` needs too: distinct problems, spread
over the levels (evenly, or by ``level_weights``), train and validation splits from separate seeds that
never share a problem, and records carrying ``meta["level"]`` and ``meta["solution"]`` (the
demonstration SFT trains on). docs/extending.md builds a new task this way.

Seeds: the held-out problems come from ``eval_seed`` and never move with the run — ``val`` (watched
during training) and, with ``num_test`` > 0, a ``test`` split of its own, disjoint from both others (else
``test`` is the validation split);
the training pool comes from ``seed``, by default derived from the run seed (gvmlit.seeding), so each
run seed trains on its own pool. ``repeats`` > 1 lists each training problem that many times under
distinct uids (a pool whose prompts come back within an epoch, each with its own statistics).
"""

from __future__ import annotations

import random
from abc import abstractmethod

from gvmlit.data.sources import PromptSource
from gvmlit.errors import GvmlitError
from gvmlit.records import PromptRecord
from gvmlit.seeding import RunSeeded

#: tries to draw a problem not seen yet before a level counts as exhausted
ATTEMPTS = 200


class GeneratedTask(RunSeeded, PromptSource):
    """A seeded, generated task with graded difficulty. Records are named ``<name>-<split>-<i>``
    (``name``: a class attribute, the class name in lower case unless set).

    Args:
        num_train: number of distinct training problems.
        num_val: number of held-out problems (``val`` and ``test`` splits).
        num_levels: number of difficulty levels ``make`` knows (0 … num_levels − 1).
        seed: seed of the training pool (None: derived from the run seed); the same seed gives the same
            problems on every machine.
        eval_seed: seed of the held-out problems (fixed: they never move with the run seed).
        level_weights: relative share of training problems at each level (None: equal shares);
            held-out problems stay evenly spread so that every level is measured.
        repeats: how many times each training problem appears in the pool (distinct uids).
        num_test: problems of a ``test`` split of its own (0: ``test`` is the validation split).
    """

    name: str = ""
    seed_name = "data.pool"

    def __init__(
        self,
        num_train: int = 2000,
        num_val: int = 120,
        num_levels: int = 1,
        seed: int | None = None,
        eval_seed: int = 0,
        level_weights: list[float] | None = None,
        repeats: int = 1,
        num_test: int = 0,
    ) -> None:
        if num_train < 0 or num_val < 0 or num_test < 0 or num_levels < 1 or repeats < 1:
            raise GvmlitError(f"{type(self).__name__} needs num_train ≥ 0, num_val ≥ 0, num_levels ≥ 1 and repeats ≥ 1")
        if level_weights is not None and (len(level_weights) != num_levels or min(level_weights) < 0 or sum(level_weights) <= 0):
            raise GvmlitError(f"{type(self).__name__}.level_weights needs {num_levels} non-negative weights, not all 0; got {level_weights}")
        self.num_train, self.num_val, self.num_levels, self.seed, self.eval_seed = num_train, num_val, num_levels, seed, eval_seed
        self.level_weights, self.repeats, self.num_test = level_weights, repeats, num_test
        self._splits: dict[str, list[PromptRecord]] | None = None
        self._pool_seed: int | None = None

    def use_run_seed(self, seed_of_run: int) -> None:
        super().use_run_seed(seed_of_run)
        if self._pool_seed != self.resolved_seed:
            self._splits = None  # another pool

    @abstractmethod
    def make(self, rng: random.Random, level: int) -> tuple[str, str, str]:
        """One problem of difficulty ``level``: (problem text, reference answer, worked solution)."""

    def records(self, split: str) -> list[PromptRecord]:
        if split not in ("train", "val", "test"):
            raise ValueError(f"{type(self).__name__} has splits 'train', 'val' and 'test', not {split!r}")
        if self._splits is None:
            self._pool_seed = self.resolved_seed
            val = self._generate(self.num_val, "val", self.eval_seed, exclude=set(), weights=None)
            test = self._generate(self.num_test, "test", self.eval_seed, {r.problem for r in val}, weights=None)
            held_out = {r.problem for r in val + test}
            train = self._generate(self.num_train, "train", self._pool_seed, held_out, self.level_weights)
            if self.repeats > 1:
                train = [
                    PromptRecord(f"{r.uid}-r{k}", r.problem, r.answer, {**r.meta, "repeat": k})
                    for r in train for k in range(self.repeats)
                ]  # fmt: skip
            self._splits = {"val": val, "test": test or val, "train": train}  # without a test split of its own, val serves both
        return self._splits[split]

    def _generate(self, count: int, split: str, seed: int, exclude: set[str], weights: list[float] | None) -> list[PromptRecord]:
        """``count`` distinct problems over the levels — in turn, or each next one from the level furthest
        below its weighted share; a level with no fresh problem left (e.g. the 100 one-digit sums) is
        skipped from then on."""
        name = self.name or type(self).__name__.lower()
        rng = random.Random(f"gvmlit-{name}-{split}-{seed}")
        records: list[PromptRecord] = []
        share = [1.0] * self.num_levels if weights is None else [float(w) for w in weights]
        drawn = [0] * self.num_levels
        seen, open_levels, turn = set(exclude), [lv for lv in range(self.num_levels) if share[lv] > 0], 0
        while len(records) < count:
            if not open_levels:
                raise GvmlitError(f"{type(self).__name__} cannot draw {count} distinct {split} problems from its levels")
            if weights is None:
                level = open_levels[turn % len(open_levels)]
            else:  # the open level furthest below its share of what has been drawn so far (ties: the lower level)
                total = sum(share[lv] for lv in open_levels)
                level = min(open_levels, key=lambda lv: (drawn[lv] - share[lv] / total * (len(records) + 1), lv))
            for _ in range(ATTEMPTS):
                problem, answer, solution = self.make(rng, level)
                if problem not in seen:
                    break
            else:
                open_levels.remove(level)
                continue
            turn += 1
            drawn[level] += 1
            seen.add(problem)
            meta = {"level": level + 1, "solution": solution, "source": f"{name} {split} {len(records)}"}
            records.append(PromptRecord(f"{name}-{split}-{len(records)}", problem, answer, meta))
        return records
