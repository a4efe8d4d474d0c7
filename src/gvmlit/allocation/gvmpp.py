"""GVMPlusPlusAllocator — gvmlit's own allocator (docs/method.md §6, docs/allocation.md). Not in the paper.

GVM (eq. 6 of docs/method.md) spends its budget on statistics it re-measures with fresh pilots on top
of the budget every iteration; per *generated* sample that loses to uniform sampling. What pays per
generated sample is not drawing samples that carry no gradient. GVM++ gets there in three steps per
round, each paid from the budget N (pilots included, every sample kept for training):

1. **Screen from memory (pooled statistics).** p_i has a Beta posterior over every sample ever drawn
   for the prompt, a visit k epochs old weighing γ^k (``decay``), on a prior of strength κ
   (``prior_strength``) centred on the acceptance rate of the epoch's prompts at their last visits.
   A prompt whose group of s samples (s = ``group_samples``, default the epoch's samples per prompt)
   would be useful to the learner with probability below τ_skip (``skip_below``) is not sampled this
   epoch: no pilot, no draw. Its evidence fades with γ, so it is tried again later. A prompt never seen
   is always piloted.
2. **Pilot with sequential stopping (as Pilot-Commit, then Reinforce-Ada).** Every prompt not
   screened out draws ``pilot_samples`` pilots. A prompt whose pilots already make its group useful
   (mixed rewards for GRPO, an accepted sample for RAFT) stops piloting. One whose pilots are
   unanimous draws ``pilot_samples`` more while, under its posterior updated with the pilots, the chance
   that they break the unanimity is at least τ_go (``continue_above``), up to ``max_pilot_samples``;
   otherwise it stops there, having cost only its pilots.
3. **Commit.** Prompts whose pilots made their group useful are committed, largest posterior variance
   p̂(1 − p̂) first, each completed to s samples in total (``split: uniform``) or sharing the commits
   by eq. (6) on p̂ with G = 1 within [``min_samples``, ``max_samples``] (``split: gvm``), as far as the
   round's budget goes. What is left is re-spent on further prompts in another round of the epoch
   (``refill: true``, the ``gvmpp`` arm; ``Allocation.refill`` asks for as many prompts as the left
   budget screened at this round's cost per prompt) or not drawn (``refill: false``, the ``gvmpp_stop``
   arm: the run then simply lasts more epochs for the same budget).

*Why each part.* Memory saves the pilots of prompts known to be solved or hopeless (in regimes where
prompts come back). Pilots inside the budget measure the live policy on prompts never seen, which
memory cannot. Sequential stopping rescues prompts at p ≈ 0.1 or 0.9, whose two pilots are mostly
unanimous although their group of 8 would be mixed, without paying a full group for the hopeless.
Committing only useful groups is where the saving per generated sample comes from. G_i is not
estimated: measured on accepted samples it grows with difficulty and would count it twice.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator, PilotRequest, UsefulGroup
from gvmlit.allocation.rules import bounded_allocation, gvm_weights
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


def already_useful(accepted: np.ndarray, pilots: np.ndarray, useful: UsefulGroup) -> np.ndarray:
    """Whether the pilots alone make the group useful (both rewards; or one accepted sample for RAFT)."""
    if useful == "accepted":
        return accepted > 0
    return (pilots >= 2) & (accepted > 0) & (accepted < pilots)


class GVMPlusPlusAllocator(BudgetAllocator):
    """Screen from memory, pilot with sequential stopping, commit to useful groups, re-spend what is left
    (see the module docstring).

    Args:
        pilot_samples: N′, pilots per stage (kept, paid from N).
        max_pilot_samples: most pilots a prompt draws in an epoch's round before it is given up.
        continue_above: τ_go, least chance that the next stage of pilots breaks a unanimous prompt's
            unanimity for it to draw them.
        skip_below: τ_skip, least probability that a seen prompt's group of s samples is useful for it to
            be piloted at all.
        decay: γ, weight per epoch of age of a visit's evidence (1 = never forget).
        prior_strength: κ, pseudo-samples of the prior, centred on the recent acceptance rate.
        group_samples: s, what a committed prompt gets in total (None: the epoch's samples per prompt).
        split: ``uniform`` (every committed prompt gets s) or ``gvm`` (eq. 6 on p̂, G = 1, within
            [min_samples, max_samples], the same total).
        alpha: α of eq. (6).
        beta: β of eq. (6).
        min_samples: fewest samples a committed prompt gets in total with ``split: gvm``.
        max_samples: most samples a committed prompt gets in total with ``split: gvm``.
        refill: re-spend what the round leaves on further prompts in another round (the ``gvmpp`` arm);
            false leaves it unspent (``gvmpp_stop``).
    """

    name = "gvmpp"
    keep_pilots = True

    def __init__(
        self,
        pilot_samples: int = 2,
        max_pilot_samples: int = 4,
        continue_above: float = 0.3,
        skip_below: float = 0.1,
        decay: float = 0.8,
        prior_strength: float = 2.0,
        group_samples: int | None = None,
        split: Literal["uniform", "gvm"] = "uniform",
        alpha: float = 1e-3,
        beta: float = 2.0,
        min_samples: int = 2,
        max_samples: int = 24,
        refill: bool = True,
    ) -> None:
        if pilot_samples < 1 or max_pilot_samples < pilot_samples or not 0 <= continue_above <= 1 or not 0 <= skip_below <= 1:
            raise GvmlitError("GVMPlusPlusAllocator needs 1 ≤ pilot_samples ≤ max_pilot_samples, 0 ≤ continue_above ≤ 1 and 0 ≤ skip_below ≤ 1")
        if prior_strength <= 0 or not 0 < decay <= 1 or not 0 <= min_samples <= max_samples or (group_samples is not None and group_samples < 2):
            raise GvmlitError("GVMPlusPlusAllocator needs prior_strength > 0, 0 < decay ≤ 1, 0 ≤ min_samples ≤ max_samples and group_samples ≥ 2")
        self.pilot_samples, self.max_pilot_samples = pilot_samples, max_pilot_samples
        self.continue_above, self.skip_below = continue_above, skip_below
        self.decay, self.prior_strength = decay, prior_strength
        self.group_samples, self.split = group_samples, split
        self.alpha, self.beta, self.min_samples, self.max_samples = alpha, beta, min_samples, max_samples
        self.refill = refill
        self._center = 0.5
        self._per_epoch: int | None = None
        self._per_prompt: float | None = None
        self._seconds = 0.0  # the allocator's own computation this epoch (its estimation overhead)

    # ------------------------------------------------------------------ estimates
    def candidates(self, prompts_per_epoch: int) -> int:
        self._per_epoch, self._seconds = prompts_per_epoch, 0.0
        return prompts_per_epoch

    def group_size(self) -> int:
        return self.group_samples or max(2, int(round(self._per_prompt or 8)))

    def posterior(self, prompts, store, epoch, center: float) -> tuple[np.ndarray, np.ndarray]:
        """Beta(a, b) of each prompt's p_i: decayed evidence of every visit (this epoch's pilots included)
        on a prior of strength κ centred on ``center``."""
        prior = (self.prior_strength * center, self.prior_strength * (1.0 - center))
        posterior = np.array([store.beta_posterior(p.uid, epoch, *prior, self.decay) for p in prompts]).reshape(-1, 2)
        return posterior[:, 0], posterior[:, 1]

    def population_rate(self, prompts, store) -> float:
        """The prior's centre: acceptance over the prompts' most recent visits; the last centre (or 0.5)
        when none was seen."""
        accepted = samples = 0
        for prompt in prompts:
            history = store.history(prompt.uid)
            epochs = history.epochs()
            for visit in history.in_epoch(epochs[-1]) if epochs else []:
                accepted, samples = accepted + visit.accepted, samples + visit.samples
        if samples:
            self._center = float(np.clip(accepted / samples, 0.02, 0.98))
        return self._center

    # ------------------------------------------------------------------ pilots: screen, then stop sequentially
    def plan_pilots(self, request: PilotRequest) -> list[int]:
        started = time.perf_counter()
        prompts, store, epoch = request.prompts, request.store, request.epoch
        if request.round == 0 and request.stage == 0:
            self._per_prompt = request.budget / (self._per_epoch or len(prompts) or 1)
        pilots = request.pilot_counts
        accepted = np.array([sum(ok) for ok in request.pilot_accepted] if request.pilot_accepted else [0] * len(prompts))
        if request.stage == 0:
            a, b = self.posterior(prompts, store, epoch, self.population_rate(prompts, store))
            seen = np.array([p.uid in store for p in prompts], dtype=bool)
            hopeful = useful_probability(a, b, 0, 0, self.group_size(), request.useful) >= self.skip_below
            plan = np.where(~seen | hopeful, self.pilot_samples, 0)
        else:
            a, b = self.posterior(prompts, store, epoch, self._center)  # the store holds this epoch's pilots
            step = np.minimum(self.pilot_samples, self.max_pilot_samples - pilots)
            unanimous = (pilots > 0) & ~already_useful(accepted, pilots, request.useful)
            chance = useful_probability(a, b, accepted, pilots, pilots + np.maximum(step, 0), request.useful)
            plan = np.where(unanimous & (step > 0) & (chance >= self.continue_above), step, 0)
        budget = request.budget - int(pilots.sum())
        plan = plan.astype(np.int64)
        while plan.sum() > budget:  # a small last round: pilot what the budget pays for
            plan[np.flatnonzero(plan)[-1]] = 0
        self._seconds += time.perf_counter() - started
        return plan.tolist()

    # ------------------------------------------------------------------ commits
    def allocate(self, request: AllocationRequest) -> Allocation:
        started = time.perf_counter()
        count = len(request.prompts)
        if count == 0:
            return Allocation(np.zeros(0, dtype=np.int64))
        if self._per_prompt is None:
            self._per_prompt = (request.epoch_budget or request.budget) / (request.target_prompts or count)
        pilots, accepted = request.pilot_counts, request.pilot_successes
        a, b = self.posterior(request.prompts, request.store, request.epoch, self._center)
        p_hat = a / (a + b)
        committed = already_useful(accepted, pilots, request.useful)
        group = self.group_size()
        budget = self.main_budget(request)
        samples = np.zeros(count, dtype=np.int64)
        order = [i for i in np.argsort(-(p_hat * (1 - p_hat)), kind="stable") if committed[i]]
        for i in order:  # largest posterior variance first, as far as the budget goes
            need = max(group - int(pilots[i]), 0)
            if budget <= 0:
                break
            samples[i] = min(need, budget)
            budget -= int(samples[i])
        chosen = samples > 0
        if self.split == "gvm" and chosen.sum() > 1:
            total = int((samples + pilots)[chosen].sum())
            lower = np.maximum(pilots[chosen], min(self.min_samples, total // chosen.sum()))
            upper = np.maximum(np.maximum(pilots[chosen], self.max_samples), lower)
            if lower.sum() <= total <= upper.sum():
                weights = gvm_weights(p_hat[chosen], np.ones(chosen.sum()), self.alpha, self.beta)
                samples[chosen] = bounded_allocation(weights, total, lower, upper) - pilots[chosen]
        spent = int(pilots.sum() + samples.sum())
        left = self.main_budget(request) - int(samples.sum())
        refill = 0
        if self.refill and left >= group:  # as many prompts as the rest buys at this round's cost per prompt
            refill = max(1, math.ceil(left * count / spent)) if spent else count
        self._seconds += time.perf_counter() - started
        store, epoch = request.store, request.epoch
        new = sum(p.uid not in store or store.history(p.uid).epochs() == [epoch] for p in request.prompts)
        metrics = {
            "new_prompts": float(new),
            "committed_prompts": float(committed.sum()),
            "piloted_prompts": float((pilots > 0).sum()),
            "screened_out_prompts": float((pilots == 0).sum()),
            "population_acceptance": self._center,
            "compute_seconds": self._seconds,
        }
        return Allocation(samples, acceptance_rate=p_hat, metrics=metrics, refill=refill)

    def state_dict(self) -> dict:
        return {"center": self._center}

    def load_state_dict(self, state: dict) -> None:
        self._center = float(state.get("center", 0.5))
