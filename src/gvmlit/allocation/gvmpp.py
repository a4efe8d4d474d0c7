"""GVMPlusPlusAllocator — gvmlit's own extension of GVM (method.md §6). Not in the paper.

GVM's stage 1 costs N′ pilot samples per prompt every iteration (as much generation as the training
samples themselves at the default N′ = 8) and then throws them away. GVM++ amortises estimation:

1. **Pilots are kept and paid from the budget.** Only prompts never seen before get N′ pilot samples;
   they are verified, trained on like any other sample, and subtracted from the epoch's budget N.
   *Why:* a pilot sample is a sample from the current policy; discarding it wastes generation.

2. **Per-prompt statistics persist across epochs.** p_i has a Beta posterior,
   Beta(a₀ + Σ_k γ^k·accepted_k, b₀ + Σ_k γ^k·rejected_k), over every sample ever drawn for the prompt
   (pilot and training), an observation k epochs old weighing γ^k (``decay``). p̂_i is its mean.
   G_i is a running estimate, Ĝ ← m·Ĝ + (1−m)·G (``grad_norm_momentum``), updated from accepted
   pilots and from up to ``grad_samples_per_prompt`` accepted training samples per epoch.
   *Why:* a revisited prompt needs no fresh pilot; the decay forgets what the policy no longer is.

3. **Exploration.** The Beta prior keeps p̂_i > 0 even after all-rejected batches
   (with a₀ = b₀ = 0.5 and 16 rejections, p̂ = 0.03, close to where GVM's regularised weight peaks),
   and a prompt with no accepted sample yet gets the median Ĝ of the epoch's prompts as its G.
   *Why:* GVM gives n_i = 0 to every p_i = 0 prompt forever, so the hardest prompts are never learned.

4. **Bounds.** n_min ≤ n_i ≤ n_max per prompt, budget still exact (water filling,
   :func:`~gvmlit.allocation.rules.bounded_allocation`).
   *Why:* n_min ≥ 2 keeps GRPO groups non-trivial; n_max stops one prompt from taking the batch.

The weights are GVM's regularised rule on (p̂_i, Ĝ_i): w_i = Ĝ_i / √(p̂_i + α / p̂_i^(β−1)).
"""

from __future__ import annotations

import numpy as np

from gvmlit.allocation.base import BudgetAllocator, PromptStats, RolloutEngine
from gvmlit.allocation.gradnorm import ParamSlice
from gvmlit.allocation.gvm import accepted_grad_norms
from gvmlit.allocation.rules import bounded_allocation, gvm_weights


class GVMPlusPlusAllocator(BudgetAllocator):
    """GVM with amortised estimation (see the module docstring for the definition and the reasons).

    Args:
        pilot_samples: N′, pilot samples for a prompt seen for the first time (kept, paid from N).
        alpha: α of the regularised GVM rule.
        beta: β of the regularised GVM rule.
        prior_accepted: a₀ of the Beta prior on p_i.
        prior_rejected: b₀ of the Beta prior on p_i.
        decay: γ, weight per epoch of age of an acceptance observation (1 = never forget).
        grad_norm_momentum: m of the running estimate of G_i.
        grad_samples_per_prompt: accepted training samples per prompt whose gradient norm updates Ĝ_i.
        min_samples: n_min, fewest samples of a prompt in the main allocation.
        max_samples: n_max, most samples of a prompt in the main allocation.
        param_slice: θs for G_i: ``embedding`` or ``lm_head``.
        grad_batch_size: sequences per batched gradient-norm pass.
    """

    def __init__(
        self,
        pilot_samples: int = 8,
        alpha: float = 1e-3,
        beta: float = 2.0,
        prior_accepted: float = 0.5,
        prior_rejected: float = 0.5,
        decay: float = 0.5,
        grad_norm_momentum: float = 0.5,
        grad_samples_per_prompt: int = 2,
        min_samples: int = 1,
        max_samples: int = 32,
        param_slice: ParamSlice = "embedding",
        grad_batch_size: int = 64,
    ) -> None:
        if not 0 <= min_samples <= max_samples:
            raise ValueError("need 0 ≤ min_samples ≤ max_samples")
        if prior_accepted <= 0 or prior_rejected <= 0:
            raise ValueError("the Beta prior needs prior_accepted > 0 and prior_rejected > 0")
        self.pilot_samples = pilot_samples
        self.alpha = alpha
        self.beta = beta
        self.prior_accepted = prior_accepted
        self.prior_rejected = prior_rejected
        self.decay = decay
        self.grad_norm_momentum = grad_norm_momentum
        self.grad_samples_per_prompt = grad_samples_per_prompt
        self.min_samples = min_samples
        self.max_samples = max_samples
        self.param_slice = param_slice
        self.grad_batch_size = grad_batch_size

    def estimate(self, prompts, engine: RolloutEngine) -> PromptStats:
        store = engine.store
        new = [i for i, p in enumerate(prompts) if p.uid not in store]
        pilot = [[] for _ in prompts]
        if new and self.pilot_samples > 0:
            drawn = engine.sample([prompts[i] for i in new], [self.pilot_samples] * len(new), purpose="pilot")
            for i, group in zip(new, drawn):
                pilot[i] = group
            self._update_grad_norms([prompts[i] for i in new], drawn, engine, limit=None)
        posterior = [store.posterior(p.uid, engine.epoch, self.prior_accepted, self.prior_rejected, self.decay) for p in prompts]
        p_hat = np.array([a / (a + b) for a, b in posterior])
        known = np.array([store.get(p.uid).grad_norm or 0.0 for p in prompts])
        fallback = float(np.median(known[known > 0])) if (known > 0).any() else 1.0
        g_hat = np.where(known > 0, known, fallback)
        return PromptStats(
            uids=[p.uid for p in prompts],
            acceptance_rate=p_hat,
            grad_norm=g_hat,
            pilot=pilot,
            budget_spent=sum(len(g) for g in pilot),
            extra={"new_prompts": len(new), "grad_norm_imputed": int((known <= 0).sum())},
        )

    def allocate(self, stats: PromptStats, budget: int) -> np.ndarray:
        count = len(stats.uids)
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        budget = max(budget, 0)
        lower = min(self.min_samples, budget // count)
        upper = max(self.max_samples, -(-budget // count))  # the budget must fit under the caps
        weights = gvm_weights(stats.acceptance_rate, stats.grad_norm, self.alpha, self.beta)
        return bounded_allocation(weights, budget, lower, upper)

    def observe(self, prompts, groups, engine: RolloutEngine) -> None:
        self._update_grad_norms(prompts, groups, engine, limit=self.grad_samples_per_prompt)

    def _update_grad_norms(self, prompts, groups, engine: RolloutEngine, limit: int | None) -> None:
        norms = accepted_grad_norms(prompts, groups, engine, self.param_slice, self.grad_batch_size, limit)
        for prompt, value in zip(prompts, norms):
            if value is not None:
                engine.store.record_grad_norm(prompt.uid, value, self.grad_norm_momentum)
