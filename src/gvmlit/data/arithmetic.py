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

from gvmlit.data.generated import GeneratedTask

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


class ArithmeticTask(GeneratedTask):
    """Built-in multi-term addition problems with graded difficulty (no download).

    Train and validation problems come from disjoint seeds and never share a problem string.

    Args:
        num_train: number of distinct training problems.
        num_val: number of held-out validation problems.
        levels: (terms, digits) per difficulty level, easiest first.
        seed: seed of the training pool (None: derived from the run seed, gvmlit.seeding).
        eval_seed: seed of the held-out problems (they never move with the run seed).
        level_weights: relative share of training problems at each level (None: equal shares).
        repeats: how many times each training problem appears in the pool (distinct uids).
        num_test: problems of a ``test`` split of its own (0: ``test`` is the validation split).
    """

    name = "arith"

    def __init__(
        self,
        num_train: int = 2000,
        num_val: int = 120,
        levels: list[tuple[int, int]] | None = None,
        seed: int | None = None,
        eval_seed: int = 0,
        level_weights: list[float] | None = None,
        repeats: int = 1,
        num_test: int = 0,
    ) -> None:
        self.levels = [tuple(level) for level in (levels or DEFAULT_LEVELS)]
        super().__init__(
            num_train=num_train, num_val=num_val, num_levels=len(self.levels), seed=seed, eval_seed=eval_seed,
            level_weights=level_weights, repeats=repeats, num_test=num_test,
        )  # fmt: skip

    def make(self, rng: random.Random, level: int) -> tuple[str, str, str]:
        operands = make_problem(rng, *self.levels[level])
        return render_problem(operands), str(sum(operands)), render_solution(operands)
