"""GVMAllocator: the paper's practical algorithm (docs/method.md §3, Algorithm 2), exactly as published.

Stage 1 draws N′ pilot samples per prompt, sets p_i = accepted/N′ and G_i = the mean over accepted
pilots of ‖∇_θs (−Σ_t log π(y_t|x, y_<t))‖₂ (the learner computes them batched,
:mod:`gvmlit.allocation.gradnorm`). Stage 2 sets n_i ∝ G_i/√(p_i + α/p_i^(β−1)) (eq. 3) with Σ n_i = N
exactly. Prompts with p_i = 0 get n_i = 0.

As in the paper the pilot samples are discarded (``keep_pilot: false``) and come on top of the
budget N; they are counted and logged (``budget/pilot_samples``) so comparisons per generated sample
stay honest.
"""

from __future__ import annotations

import logging

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator, ParamSlice, accepted_indices
from gvmlit.allocation.rules import gvm_allocation, gvm_weights, round_to_budget, without_singletons
from gvmlit.errors import GvmlitError

log = logging.getLogger("gvmlit")


def pilot_statistics(request: AllocationRequest) -> tuple[np.ndarray, np.ndarray]:
    """(p_i, G_i) from this epoch's pilots: acceptance rate, and the mean gradient norm of the accepted
    pilots recorded in the store (0 when none was accepted or measured)."""
    p = np.array([np.mean(ok) if ok else 0.0 for ok in request.pilot_accepted])
    g = np.zeros(len(request.prompts))
    for i, prompt in enumerate(request.prompts):
        measured = [o for o in request.store.history(prompt.uid).grad_norms if o.epoch == request.epoch and o.purpose == "pilot"]
        if measured:
            g[i] = measured[-1].mean
    return p, g


class GVMAllocator(BudgetAllocator):
    """GVM allocation from pilot samples of the current policy.

    Args:
        pilot_samples: N′, pilot samples per prompt in stage 1.
        alpha: α of the regularised rule (0 = basic rule G_i/√p_i).
        beta: β of the regularised rule.
        param_slice: θs for G_i: ``embedding`` (reference code) or ``lm_head``.
        keep_pilot: also train on the pilot samples, paid from N (the paper discards them, on top of N).
        max_acceptance: drop prompts whose p_i exceeds this (off by default).
        min_expected_accepted: drop prompts whose expected accepted count p_i·n_i is below this (off).
        no_singletons: never give a prompt exactly one sample (a GRPO group of one has no baseline);
            off, as in the paper.
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
        no_singletons: bool = False,
    ) -> None:
        if pilot_samples < 1:
            raise GvmlitError(f"GVMAllocator.pilot_samples must be ≥ 1, got {pilot_samples}")
        self.pilot_samples = pilot_samples
        self.alpha = alpha
        self.beta = beta
        self.param_slice = param_slice
        self.keep_pilots = keep_pilot
        self.max_acceptance = max_acceptance
        self.min_expected_accepted = min_expected_accepted
        self.no_singletons = no_singletons

    def plan_pilots(self, request) -> list[int]:
        return [self.pilot_samples if request.stage == 0 else 0] * len(request.prompts)

    def grad_norm_samples(self, prompt, group, accepted, purpose) -> list[int]:
        return accepted_indices(accepted) if purpose == "pilot" else []

    def allocate(self, request: AllocationRequest) -> Allocation:
        p, g = pilot_statistics(request)
        budget = self.main_budget(request)
        metrics = {"estimated_p_zero": float(np.mean(p == 0)) if p.size else 0.0, "fallback_uniform": 0.0}
        try:
            samples = gvm_allocation(p, g, budget, self.alpha, self.beta, self.max_acceptance, self.min_expected_accepted)
        except ValueError as err:
            if "all weights are zero" not in str(err):
                raise
            # No prompt had an accepted pilot sample: GVM's rule gives nothing to anyone. Spending the
            # budget uniformly is the only informative choice; it is logged, not silent.
            log.warning("GVM: no prompt has an accepted pilot sample; this epoch's budget is spread uniformly")
            metrics["fallback_uniform"] = 1.0
            samples = round_to_budget(np.ones(len(request.prompts)), budget)
        if self.no_singletons:
            samples = without_singletons(samples, gvm_weights(p, g, self.alpha, self.beta))
        return Allocation(samples, acceptance_rate=p, grad_norm=g, metrics=metrics)
