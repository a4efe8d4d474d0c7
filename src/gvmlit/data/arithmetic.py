"""The built-in offline task: multi-term addition with a step-by-step trace.

A problem is ``a+b+c`` and its demonstration adds the first two terms and rewrites the rest of the
sum, one step at a time, then states the answer GSM8K-style::

    prompt:      "47+5+38="
    rationale:   "52+38;90;#### 90"

(Rewriting the remaining terms keeps every step local: a tiny model only copies from the previous
step instead of indexing into the prompt.)

Difficulty is graded by the number of terms and their digits, so prompts have very different
acceptance rates under one policy, which is what GVM's allocation exploits. Everything is generated
deterministically from a seed: no download is needed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gvmlit.data.records import PromptRecord
from gvmlit.data.sources import PromptSource

#: (number of terms, digits per term) for each difficulty level, easiest first.
DEFAULT_LEVELS: tuple[tuple[int, int], ...] = ((2, 1), (3, 1), (2, 2), (4, 1), (3, 2), (5, 2))


def make_problem(rng: random.Random, terms: int, digits: int) -> list[int]:
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return [rng.randint(low, 10**digits - 1) for _ in range(terms)]


def render_problem(operands: Sequence[int]) -> str:
    return "+".join(str(x) for x in operands)


def render_solution(operands: Sequence[int]) -> str:
    """The chain-of-thought demonstration: the sum with its first two terms added, until one term is
    left, then ``#### answer``."""
    terms, steps = list(operands), []
    while len(terms) > 1:
        terms = [terms[0] + terms[1], *terms[2:]]
        steps.append(render_problem(terms))
    return ";".join(steps) + f";#### {terms[0]}"


class ArithmeticTask(PromptSource):
    """Built-in multi-term addition problems with graded difficulty (no download).

    Train and validation problems come from disjoint seeds and never share a problem string.

    Args:
        num_train: number of training problems.
        num_val: number of held-out validation problems.
        levels: (terms, digits) per difficulty level; problems are spread evenly over levels.
        seed: generator seed; the same seed gives the same problems on every machine.
    """

    def __init__(
        self,
        num_train: int = 2000,
        num_val: int = 120,
        levels: list[tuple[int, int]] | None = None,
        seed: int = 0,
    ) -> None:
        self.num_train = num_train
        self.num_val = num_val
        self.levels = [tuple(level) for level in (levels or DEFAULT_LEVELS)]
        self.seed = seed
        val = self._generate(num_val, split="val", exclude=set())
        train = self._generate(num_train, split="train", exclude={r.problem for r in val})
        self._splits = {"train": train, "val": val}

    def _generate(self, count: int, split: str, exclude: set[str]) -> list[PromptRecord]:
        """``count`` distinct problems, cycling through the levels; a level with no fresh problem left
        (e.g. the 100 one-digit pairs) is skipped from then on."""
        rng = random.Random(f"gvmlit-arith-{split}-{self.seed}")
        records: list[PromptRecord] = []
        seen = set(exclude)
        open_levels = list(range(len(self.levels)))
        turn = 0
        while len(records) < count:
            if not open_levels:
                raise ValueError(f"cannot draw {count} distinct {split} problems from levels {self.levels}")
            level = open_levels[turn % len(open_levels)]
            for _ in range(200):
                operands = make_problem(rng, *self.levels[level])
                problem = render_problem(operands)
                if problem not in seen:
                    break
            else:
                open_levels.remove(level)
                continue
            turn += 1
            seen.add(problem)
            records.append(
                PromptRecord(
                    uid=f"arith-{split}-{len(records)}",
                    problem=problem,
                    answer=str(sum(operands)),
                    meta={"level": level + 1, "solution": render_solution(operands)},
                )
            )
        return records

    def records(self, split: str) -> list[PromptRecord]:
        if split == "test":  # the held-out split serves both validation and test
            split = "val"
        if split not in self._splits:
            raise ValueError(f"ArithmeticTask has splits 'train', 'val' and 'test', not {split!r}")
        return self._splits[split]
