"""GVMAllocator: the paper's practical algorithm (method.md §3, Algorithm 2), computed on the live policy.

Stage 1 draws N′ pilot samples per prompt, sets p_i = accepted/N′ and G_i = the mean over accepted
pilots of ‖∇_θs (−Σ_t log π(y_t|x, y_<t))‖₂ (batched, :mod:`gvmlit.allocation.gradnorm`). Stage 2 sets
n_i ∝ G_i/√(p_i + α/p_i^(β−1)) with Σ n_i = N exactly. Prompts with p_i = 0 get n_i = 0.

As in the paper the pilot samples are discarded (``keep_pilot: false``) and come on top of the
budget N; they are counted and logged (``budget/pilot_samples``) so comparisons per generated sample
stay honest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from gvmlit.allocation.base import BudgetAllocator, PromptStats, RolloutEngine
from gvmlit.allocation.gradnorm import ParamSlice
from gvmlit.allocation.rules import gvm_allocation, round_to_budget

log = logging.getLogger("gvmlit")


def accepted_grad_norms(
    prompts: Sequence,
    groups: Sequence[Sequence],
    engine: RolloutEngine,
    param_slice: ParamSlice,
    grad_batch_size: int,
    limit: int | None = None,
) -> list[float | None]:
    """Per prompt, the mean of ‖∇_θs (−log π(y|x))‖₂ over its accepted samples (at most ``limit`` of
    them), or None when it has none; one batched computation for all prompts."""
    accepted = [[c for c in group if engine.is_accepted(c.reward)][:limit] for group in groups]
    if not any(accepted):
        return [None] * len(groups)
    norms = engine.grad_norms(prompts, accepted, param_slice, grad_batch_size)
    return [float(n.mean()) if len(n) else None for n in norms]


class GVMAllocator(BudgetAllocator):
    """GVM allocation from pilot samples of the current policy.

    Args:
        pilot_samples: N′, pilot samples per prompt in stage 1.
        alpha: α of the regularised rule (0 = basic rule G_i/√p_i).
        beta: β of the regularised rule.
        param_slice: θs for G_i: ``embedding`` (reference code) or ``lm_head``.
        keep_pilot: also train on the pilot samples (the paper discards them).
        max_acceptance: drop prompts whose p_i exceeds this (off by default).
        min_expected_accepted: drop prompts whose expected accepted count p_i·n_i is below this (off).
        grad_batch_size: sequences per batched gradient-norm pass.
    """

    def __init__(
        self,
        pilot_samples: int = 8,
        alpha: float = 1e-3,
        beta: float = 2.0,
        param_slice: ParamSlice = "embedding",
        keep_pilot: bool = False,
        max_acceptance: float | None = None,
        min_expected_accepted: float | None = None,
        grad_batch_size: int = 64,
    ) -> None:
        if pilot_samples < 1:
            raise ValueError("pilot_samples must be ≥ 1")
        self.pilot_samples = pilot_samples
        self.alpha = alpha
        self.beta = beta
        self.param_slice = param_slice
        self.keep_pilot = keep_pilot
        self.max_acceptance = max_acceptance
        self.min_expected_accepted = min_expected_accepted
        self.grad_batch_size = grad_batch_size

    def estimate(self, prompts, engine: RolloutEngine) -> PromptStats:
        pilots = engine.sample(prompts, [self.pilot_samples] * len(prompts), purpose="pilot")
        # p_i = accepted / N'; G_i = mean gradient norm over the accepted pilots (0 without any)
        p = np.array([sum(engine.is_accepted(c.reward) for c in group) / len(group) for group in pilots])
        norms = accepted_grad_norms(prompts, pilots, engine, self.param_slice, self.grad_batch_size)
        g = np.array([0.0 if n is None else n for n in norms])
        return PromptStats(
            uids=[x.uid for x in prompts],
            acceptance_rate=p,
            grad_norm=g,
            pilot=pilots if self.keep_pilot else None,
        )

    def allocate(self, stats: PromptStats, budget: int) -> np.ndarray:
        try:
            return gvm_allocation(
                stats.acceptance_rate, stats.grad_norm, budget, self.alpha, self.beta,
                self.max_acceptance, self.min_expected_accepted,
            )  # fmt: skip
        except ValueError as err:
            if "all weights are zero" not in str(err):
                raise
            # No prompt had an accepted pilot sample: GVM's rule gives nothing to anyone. Spending the
            # budget uniformly is the only informative choice; it is logged, not silent.
            log.warning("GVM: no prompt has an accepted pilot sample; this epoch's budget is spread uniformly")
            stats.extra["fallback_uniform"] = True
            return round_to_budget(np.ones(len(stats.uids)), budget)
