"""GVMPlusPlusAllocator — gvmlit's own allocator (docs/method.md §6, docs/allocation.md). Not in the paper.

GVM spends its budget by eq. (6) of docs/method.md on statistics it re-measures with fresh pilots every
iteration. Per *generated* sample that loses to uniform sampling (the measurements in docs/): the
pilots double the generation, G_i grows with difficulty so the rule counts difficulty twice, and
prompts estimated at p = 0 starve forever. GVM++ keeps GVM's aim — spend samples where they reduce
the gradient's variance — and changes how it gets there:

1. **Memory instead of pilots.** p_i has a Beta posterior over every sample ever drawn for the prompt,
   a visit k epochs old weighing γ^k (``decay``), on a prior centred on the acceptance rate of the
   epoch's prompts at their last visits, with strength ``prior_strength`` (empirical Bayes). A prompt
   never seen draws no pilots by default: under the prior it gets its uniform share, and that first
   visit is its measurement (``pilot_samples`` > 0 draws pilots for new prompts instead, kept and paid
   from N). *Why:* pilots of a revisited prompt re-measure what the store already knows, and pilots of
   a new prompt did not pay for themselves in our measurements (docs/measurements.md): on prompts
   never seen again they cut hard prompts short.

2. **Spend only where a gradient is likely.** What makes a group useful depends on the learner, which
   says so in the request: GRPO learns only from groups whose rewards differ (an all-equal group has
   zero advantages), RAFT from groups with at least one accepted sample. For each prompt GVM++
   computes, under the posterior, the probability π_i that the group it would get — its share
   s = N / prompts, pilots included — is useful; a prompt whose pilots already make it so has π_i = 1.
   Prompts with π_i < ``skip_below`` are not sampled
   this epoch and their share is not spent (``spend: save``; ``refill`` shares it among the others).
   *Why:* a sample that carries no gradient is the most expensive kind; saving it is where
   allocation pays per generated sample. Exploration comes from the decay: a skipped prompt's
   evidence fades, π_i climbs back towards the prior, and the prompt is tried again.

3. **Split by GVM's rule, without counting difficulty twice.** The sampled prompts share their budget
   by eq. (6) on the posterior mean p̂_i with G_i = 1 (``split: gvm``; ``uniform`` gives each its
   share), within [``min_samples``, ``max_samples``] on what a prompt gets in total (min 2: a group
   of one has no baseline). *Why:* G_i measured on accepted samples grows with difficulty, and
   eq. (6) already favours rarely-solved prompts through p̂_i.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator, UsefulGroup
from gvmlit.allocation.rules import bounded_allocation, gvm_weights, round_to_budget
from gvmlit.errors import GvmlitError


def beta_moment(a: np.ndarray, b: np.ndarray, power: np.ndarray) -> np.ndarray:
    """E[p^m] for p ~ Beta(a, b): Π_{j<m} (a + j) / (a + b + j), element-wise (m ≥ 0 integers)."""
    a, b, power = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float), np.asarray(power, int))
    out = np.ones(a.shape)
    for j in range(int(power.max(initial=0))):
        step = j < power
        out[step] *= (a[step] + j) / (a[step] + b[step] + j)
    return out


def useful_probability(a, b, accepted, pilots, group, useful: UsefulGroup = "mixed") -> np.ndarray:
    """P(a group of ``group`` samples is useful) given ``pilots`` of them already drawn with ``accepted``
    successes, under p ~ Beta(a, b) (the posterior, pilots included): it has both rewards (``mixed``)
    or at least one success (``accepted``)."""
    accepted, pilots, group = (np.asarray(x) for x in (accepted, pilots, group))
    rest = np.maximum(group - pilots, 0)
    all_correct = np.where(pilots > 0, accepted == pilots, True)
    all_wrong = np.where(pilots > 0, accepted == 0, True)
    # the rest must break the pilots' unanimity (or, with no pilots, the group must not be unanimous)
    correct_rest, wrong_rest = beta_moment(a, b, rest), beta_moment(b, a, rest)
    if useful == "accepted":
        return np.where(all_wrong, 1.0 - wrong_rest, 1.0)
    p = 1.0 - np.where(all_correct, correct_rest, 0.0) - np.where(all_wrong, wrong_rest, 0.0)
    return np.where((pilots > 0) & ~all_correct & ~all_wrong, 1.0, np.clip(p, 0.0, 1.0))


class GVMPlusPlusAllocator(BudgetAllocator):
    """GVM with memory, sampling only where a gradient is likely (see the module docstring).

    Args:
        pilot_samples: N′, pilot samples for a prompt never seen (kept, paid from N; 0 = none, the default).
        skip_below: τ, least probability that a prompt's group carries a gradient for it to be sampled.
        decay: γ, weight per epoch of age of a visit's evidence (1 = never forget).
        prior_strength: κ, pseudo-samples of the prior, centred on the last epoch's acceptance rate.
        split: how the sampled prompts share the budget: ``gvm`` (eq. 6 on p̂, G = 1) or ``uniform``.
        alpha: α of eq. (6).
        beta: β of eq. (6).
        min_samples: fewest samples a sampled prompt gets in total this epoch (pilots included).
        max_samples: most samples a prompt gets in total this epoch (pilots included).
        spend: ``save`` — skipped prompts' shares are not drawn; ``refill`` — the sampled prompts share them.
    """

    def __init__(
        self,
        pilot_samples: int = 0,
        skip_below: float = 0.45,
        decay: float = 0.95,
        prior_strength: float = 1.0,
        split: Literal["gvm", "uniform"] = "gvm",
        alpha: float = 1e-3,
        beta: float = 2.0,
        min_samples: int = 2,
        max_samples: int = 24,
        spend: Literal["save", "refill"] = "save",
    ) -> None:
        if not 0 <= min_samples <= max_samples or pilot_samples < 0 or prior_strength <= 0 or not 0 <= skip_below <= 1:
            raise GvmlitError("GVMPlusPlusAllocator needs 0 ≤ min_samples ≤ max_samples, pilot_samples ≥ 0, prior_strength > 0, 0 ≤ skip_below ≤ 1")
        self.pilot_samples = pilot_samples
        self.skip_below = skip_below
        self.decay = decay
        self.prior_strength = prior_strength
        self.split = split
        self.alpha = alpha
        self.beta = beta
        self.min_samples = min_samples
        self.max_samples = max_samples
        self.spend = spend
        self._center = 0.5

    def plan_pilots(self, request) -> list[int]:
        if request.stage > 0:
            return [0] * len(request.prompts)
        return [0 if p.uid in request.store else self.pilot_samples for p in request.prompts]

    def allocate(self, request: AllocationRequest) -> Allocation:
        prompts, store, epoch = request.prompts, request.store, request.epoch
        count = len(prompts)
        if count == 0:
            return Allocation(np.zeros(0, dtype=np.int64))
        center = self._population_rate(request)
        prior = (self.prior_strength * center, self.prior_strength * (1.0 - center))
        posterior = np.array([store.beta_posterior(p.uid, epoch, *prior, self.decay) for p in prompts])
        a, b = posterior[:, 0], posterior[:, 1]
        p_hat = a / (a + b)
        pilots = request.pilot_counts
        accepted = np.array([sum(ok) for ok in request.pilot_accepted])
        share = round_to_budget(np.ones(count), request.budget)  # s_i: each prompt's share of N, pilots included
        useful = useful_probability(a, b, accepted, pilots, np.maximum(share, pilots), request.useful)
        # a prompt never seen is always sampled: its first visit is its measurement (else a high skip_below
        # could keep new prompts out for good)
        unseen = np.array([p.uid not in store or store.history(p.uid).epochs() == [epoch] for p in prompts])
        sampled = (useful >= self.skip_below) | unseen
        totals = pilots.copy()
        budget = int(share[sampled].sum()) if self.spend == "save" else request.budget - int(pilots[~sampled].sum())
        if sampled.any() and budget > int(pilots[sampled].sum()):
            weights = gvm_weights(p_hat[sampled], np.ones(sampled.sum()), self.alpha, self.beta) if self.split == "gvm" else np.ones(sampled.sum())
            lower = np.maximum(min(self.min_samples, budget // sampled.sum()), pilots[sampled])
            upper = np.maximum(max(self.max_samples, -(-budget // sampled.sum())), pilots[sampled])
            if lower.sum() > budget:
                lower = pilots[sampled]
            totals[sampled] = bounded_allocation(weights, budget, lower, upper)
        samples = totals - pilots
        metrics = {
            "skipped_prompts": float((~sampled).mean()),
            "new_prompts": float((pilots > 0).sum()),
            "population_acceptance": center,
            "mean_useful_probability": float(useful.mean()),
        }
        return Allocation(samples.astype(np.int64), acceptance_rate=p_hat, metrics=metrics, histograms={"useful_probability": useful})

    def _population_rate(self, request: AllocationRequest) -> float:
        """The prior's centre: acceptance over the epoch's prompts' most recent visits (this epoch's
        pilots for new prompts); the last centre, or 0.5, when nothing is known."""
        accepted = samples = 0
        for prompt in request.prompts:
            history = request.store.history(prompt.uid)
            epochs = history.epochs()
            for visit in history.in_epoch(epochs[-1]) if epochs else []:
                accepted, samples = accepted + visit.accepted, samples + visit.samples
        if samples:
            self._center = float(np.clip(accepted / samples, 0.02, 0.98))
        return self._center

    def state_dict(self) -> dict:
        return {"center": self._center}

    def load_state_dict(self, state: dict) -> None:
        self._center = float(state.get("center", 0.5))
