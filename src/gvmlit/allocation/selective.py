"""SelectiveRolloutAllocator: GRESO's pre-rollout skipping as published (Zheng et al., arXiv:2506.02177;
official code github.com/Infini-AI-Lab/GRESO, ``verl/trainer/ttis/presampling_selector.py`` and
``ray_trainer.py``, strategy ``all_probabilistic``).

A prompt whose last z visits were all *easy* (every sample correct, mean reward ≥ 0.98) is skipped
before rollout with probability 1 − max(p_easy^z, 0.01); one whose last z visits were all *hard* (mean
reward ≤ 0.11, i.e. no sample correct at 8 samples) with 1 − max(p_hard^z, 0.01). The exploration
probabilities start at ``exploration`` (0.5) and move by ``adapt_step`` (0.01) after every epoch once
prompts come back (the published trainer adapts from its second pass over the data on), within
[``min_exploration``, ``max_exploration``] = [0.05, 0.95]: down (skip more) when the share of the last
epoch's sampled prompts that came back all easy (all hard) reached its target, up otherwise. The target
zero-variance share ``target_zero_variance`` (0.25) is split a third to easy and two thirds to hard
prompts ("more exploration on hard examples, because they are more likely to change").

GRESO then refills the batch: skipped prompts' slots go to further prompts (``Allocation.refill``; the
published trainer accumulates kept prompts until its rollout batch is full), and, with GRPO, dynamic
sampling (``groups.dynamic_sampling: true`` in the learner) draws more until the epoch's prompts' worth
of groups carry a gradient — the study's ``greso`` arm sets both. The kept prompts get the uniform
share N / prompts each.

Skipping decisions are seeded by (run seed, epoch, round, prompt) (gvmlit.seeding), so every rank and a
resumed run make the same ones. docs/peers.md lists where this departs from the publication.
"""

from __future__ import annotations

import zlib

import numpy as np

from gvmlit.allocation.base import Allocation, AllocationRequest, BudgetAllocator
from gvmlit.allocation.rules import round_to_budget
from gvmlit.allocation.store import PromptStatsStore
from gvmlit.errors import GvmlitError
from gvmlit.seeding import RunSeeded

#: the published thresholds on a visit's mean reward: all correct (easy) and none correct (hard)
EASY_AT_LEAST, HARD_AT_MOST = 0.98, 0.11
#: the published floor on the probability of keeping a prompt (a streak never skips it for sure)
LEAST_KEEP = 0.01


def visit_streak(store: PromptStatsStore, uid: str, kind: str) -> int:
    """How many of the prompt's most recent visited epochs in a row were ``easy`` (mean reward ≥ 0.98) or
    ``hard`` (≤ 0.11); a hard streak counts only when the last visit was hard (as published)."""
    streak = 0
    for epoch in reversed(store.history(uid).epochs()):
        samples, accepted, _, _ = store.epoch_group(uid, epoch)
        rate = accepted / samples
        if (kind == "easy" and rate < EASY_AT_LEAST) or (kind == "hard" and rate > HARD_AT_MOST):
            break
        streak += 1
    return streak


def skip_probability(easy_streak: int, hard_streak: int, p_easy: float, p_hard: float) -> float:
    """GRESO's probability of skipping a prompt: the easy test first, then the hard one."""
    keep_easy = max(p_easy**easy_streak, LEAST_KEEP) if easy_streak else 1.0
    keep_hard = max(p_hard**hard_streak, LEAST_KEEP) if hard_streak else 1.0
    return 1.0 - keep_easy * keep_hard


class SelectiveRolloutAllocator(RunSeeded, BudgetAllocator):
    """GRESO: skip prompts whose recent visits were all correct or all wrong, refill their slots.

    Args:
        exploration: p_easy and p_hard at the start (published 0.5).
        target_zero_variance: target share of zero-variance prompts among those sampled (published 0.25),
            a third of it for easy prompts and two thirds for hard ones.
        adapt_step: change of p_easy / p_hard per epoch (published 0.01 per step).
        min_exploration: least p_easy / p_hard (published 0.05).
        max_exploration: largest p_easy / p_hard (published 0.95).
        refill: ask for further prompts in place of the skipped ones (published: the rollout batch is filled).
        seed: seed of the skipping decisions (None: derived from the run seed, gvmlit.seeding).
    """

    name = "greso"
    seed_name = "allocator"

    def __init__(
        self,
        exploration: float = 0.5,
        target_zero_variance: float = 0.25,
        adapt_step: float = 0.01,
        min_exploration: float = 0.05,
        max_exploration: float = 0.95,
        refill: bool = True,
        seed: int | None = None,
    ) -> None:
        if not 0 < min_exploration <= exploration <= max_exploration <= 1 or not 0 <= target_zero_variance <= 1:
            raise GvmlitError("SelectiveRolloutAllocator needs 0 < min_exploration ≤ exploration ≤ max_exploration ≤ 1 and 0 ≤ target_zero_variance ≤ 1")
        self.exploration = {"easy": exploration, "hard": exploration}
        self.target_zero_variance = target_zero_variance
        self.adapt_step = adapt_step
        self.min_exploration, self.max_exploration = min_exploration, max_exploration
        self.refill = refill
        self.seed = seed
        self._sampled: dict[int, list[str]] = {}  # epoch → uids sampled in it (for the adaptation)
        self._adapting = False  # from the first epoch that revisits a prompt on (the published second data pass)

    @property
    def targets(self) -> dict[str, float]:
        """The published split of the target zero-variance share: a third easy, two thirds hard."""
        return {"easy": self.target_zero_variance / 3, "hard": self.target_zero_variance * 2 / 3}

    def allocate(self, request: AllocationRequest) -> Allocation:
        prompts, store, epoch = request.prompts, request.store, request.epoch
        count, budget = len(prompts), self.main_budget(request)
        if count == 0:
            return Allocation(np.zeros(0, dtype=np.int64))
        self._adapting = self._adapting or any(store.history(p.uid).epochs()[0] < epoch for p in prompts if p.uid in store)
        self._adapt(store, epoch)
        p_easy, p_hard = self.exploration["easy"], self.exploration["hard"]
        probability = np.array([
            skip_probability(visit_streak(store, p.uid, "easy"), visit_streak(store, p.uid, "hard"), p_easy, p_hard) for p in prompts
        ])  # fmt: skip
        draws = np.array([np.random.default_rng([self.resolved_seed, epoch, request.round, zlib.crc32(p.uid.encode())]).random() for p in prompts])
        skipped = draws < probability
        samples = round_to_budget(np.ones(count), budget) * ~skipped  # each prompt's share, not drawn for the skipped ones
        self._sampled.setdefault(epoch, []).extend(p.uid for p, s in zip(prompts, samples) if s > 0)
        metrics = {"skipped_prompts": float(skipped.mean()), "exploration_easy": p_easy, "exploration_hard": p_hard}
        refill = int(skipped.sum()) if self.refill else 0
        return Allocation(samples.astype(np.int64), metrics=metrics, histograms={"skip_probability": probability}, refill=refill)

    def _adapt(self, store: PromptStatsStore, epoch: int) -> None:
        """After an epoch, move p_easy and p_hard by the shares of its sampled prompts that came back all
        correct / all wrong, against their targets (once per epoch, once prompts come back: the published
        trainer adapts from its second pass over the data on)."""
        for done in sorted(e for e in self._sampled if e < epoch):
            uids = self._sampled.pop(done)
            if not self._adapting:
                continue
            groups = [store.epoch_group(uid, done) for uid in dict.fromkeys(uids)]
            groups = [g for g in groups if g is not None and g[0] > 0]
            if not groups:
                continue
            rates = np.array([accepted / samples for samples, accepted, _, _ in groups])
            shares = {"easy": float(np.mean(rates >= EASY_AT_LEAST)), "hard": float(np.mean(rates <= HARD_AT_MOST))}
            for kind, share in shares.items():
                step = -self.adapt_step if share >= self.targets[kind] else self.adapt_step
                self.exploration[kind] = float(np.clip(self.exploration[kind] + step, self.min_exploration, self.max_exploration))

    def state_dict(self) -> dict:
        return {"exploration": dict(self.exploration), "sampled": {str(k): v for k, v in self._sampled.items()}, "adapting": self._adapting}

    def load_state_dict(self, state: dict) -> None:
        self.exploration.update(state.get("exploration", {}))
        self._sampled = {int(k): list(v) for k, v in (state.get("sampled") or {}).items()}
        self._adapting = bool(state.get("adapting", False))
