"""A task from another generator, for the held-out regime ``mixed_digits`` (docs/study/PROTOCOL.md).

:class:`MixedDigitsTask` writes the built-in task's sums (same prompt ``a+b+c=``, same step-by-step
solution, so the warm start ``models/arith-sft`` reads it without a new SFT) from another generator:
the terms of one sum have *different* lengths (a 3-digit term beside a 1-digit one), which the built-in
generator never makes — every one of its sums has terms of one length. Level k has k + 2 terms, each
1 to 3 digits long, drawn independently.
"""

from __future__ import annotations

import random

from gvmlit.data.arithmetic import render_problem, render_solution
from gvmlit.data.generated import GeneratedTask


class MixedDigitsTask(GeneratedTask):
    """Sums of 2 to 5 terms whose lengths (1 to 3 digits) differ within a sum.

    Args:
        num_train: number of distinct training problems.
        num_val: number of held-out validation problems.
        seed: seed of the training pool (None: derived from the run seed, gvmlit.seeding).
        eval_seed: seed of the held-out problems (they never move with the run seed).
        level_weights: relative share of training problems at each level (None: equal shares).
        repeats: how many times each training problem appears in the pool (distinct uids).
        num_test: problems of a ``test`` split of its own (0: ``test`` is the validation split).
    """

    name = "mixed"

    def __init__(
        self,
        num_train: int = 2000,
        num_val: int = 120,
        seed: int | None = None,
        eval_seed: int = 0,
        level_weights: list[float] | None = None,
        repeats: int = 1,
        num_test: int = 0,
    ) -> None:
        super().__init__(
            num_train=num_train, num_val=num_val, num_levels=4, seed=seed, eval_seed=eval_seed,
            level_weights=level_weights, repeats=repeats, num_test=num_test,
        )  # fmt: skip

    def make(self, rng: random.Random, level: int) -> tuple[str, str, str]:
        terms = level + 2
        while True:
            digits = [rng.randint(1, 3) for _ in range(terms)]
            if len(set(digits)) > 1:  # lengths that differ: what the built-in generator never writes
                break
        operands = [rng.randint(0 if d == 1 else 10 ** (d - 1), 10**d - 1) for d in digits]
        return render_problem(operands), str(sum(operands)), render_solution(operands)
